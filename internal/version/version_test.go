package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "kith", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	in := fromBuildInfo(bi)
	if in.Revision != "0123456789abcdef0123456789abcdef01234567" || !in.Modified || in.Go != "go1.26.8" {
		t.Fatalf("%+v", in)
	}
	if s := in.String(); !strings.Contains(s, "rev 0123456789ab") || !strings.Contains(s, "modified") {
		t.Fatalf("String() = %q", s)
	}
	bi.Settings = bi.Settings[:1]
	if s := fromBuildInfo(bi).String(); strings.Contains(s, "modified") {
		t.Fatalf("a clean build says %q", s)
	}
	if s := fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8"}).String(); !strings.Contains(s, "no VCS revision") {
		t.Fatalf("an unstamped build says %q", s)
	}
}
