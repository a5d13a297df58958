package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The CLI speaks to the daemon through package node/api only (issue 11):
// no command file imports a component (chat, share, f2f, tunnels), and
// package node only where a node runs in-process (`up`, `init`, `repair`
// and the offline `config`), node/demo and node/sim only in theirs.
func TestCLIImportsOnlyAPI(t *testing.T) {
	inProcess := map[string]map[string]bool{
		"kith/node":      {"node.go": true, "config.go": true},
		"kith/node/demo": {"demo.go": true},
		"kith/node/sim":  {"sim.go": true},
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pf.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == "kith/node/api", strings.HasPrefix(path, "kith/internal/"):
			case inProcess[path] != nil:
				if !inProcess[path][f] {
					t.Errorf("%s imports %s, which only the in-process commands may", f, path)
				}
			case strings.HasPrefix(path, "kith/"):
				t.Errorf("%s imports %s: the CLI goes through kith/node/api", f, path)
			}
		}
	}
}
