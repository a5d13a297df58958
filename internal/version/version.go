// Package version tells which build of kith is running: the module
// version and the VCS revision the go command stamped into the binary, and
// the Go version that built it.
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Info describes a build.
type Info struct {
	// Version is the module version ("v1.2.3", or "(devel)" for a build
	// from a checkout).
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, "" if the
	// build was not stamped (go run, go test, or no git).
	Revision string `json:"revision,omitempty"`
	// Time is the commit time of Revision, RFC 3339.
	Time string `json:"time,omitempty"`
	// Modified is set when the work tree had changes not committed.
	Modified bool `json:"modified,omitempty"`
	// Go is the Go version that built the binary.
	Go string `json:"go"`
}

// Get returns the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, Go: bi.GoVersion}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the one-line form: "v1.2.3 (rev 1a2b3c4d5e6f, modified) go1.26.8".
func (in Info) String() string {
	var rev []string
	if in.Revision != "" {
		r := in.Revision
		if len(r) > 12 {
			r = r[:12]
		}
		rev = append(rev, "rev "+r)
	} else {
		rev = append(rev, "no VCS revision")
	}
	if in.Modified {
		rev = append(rev, "modified")
	}
	return fmt.Sprintf("%s (%s) %s", in.Version, strings.Join(rev, ", "), in.Go)
}
