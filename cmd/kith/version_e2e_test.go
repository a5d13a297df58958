package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// `kith version` names the revision the binary was built from, and says
// when the tree it was built from had changes; `--version` agrees.
func TestVersion(t *testing.T) {
	var v versionInfo
	if err := json.Unmarshal([]byte(mustKith(t, "version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Go == "" || v.Schema == 0 {
		t.Fatalf("version without Go version or schema: %+v", v)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git checkout to compare with (%v): the revision cannot be stamped", err)
	}
	if want := strings.TrimSpace(string(head)); v.Revision != want {
		t.Fatalf("revision %q, want HEAD %q", v.Revision, want)
	}
	if v.Modified != builtDirty {
		t.Fatalf("modified = %v, but git status said dirty = %v when the binary was built", v.Modified, builtDirty)
	}
	text := mustKith(t, "version")
	if !strings.Contains(text, v.Revision[:12]) || strings.Contains(text, "modified") != v.Modified {
		t.Fatalf("kith version printed %q for %+v", text, v)
	}
	if out := mustKith(t, "--version"); !strings.Contains(out, v.Revision[:12]) {
		t.Fatalf("kith --version printed %q", out)
	}
}
