package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"kith/node/api"
)

func status(t *testing.T, home string) api.Status {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(mustKith(t, "status", "--json", "--home", home)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A setting made with `kith config set` (daemon down or up) survives a
// restart; a flag of `kith up` overrides it for one run; a nickname
// change is live and the next invite carries it; bad keys and values are
// refused with what to do.
func TestConfigPersistsAndFlagsOverride(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	mustKith(t, "init", "--name", "ana", "--home", home)
	if out := mustKith(t, "config", "set", "max-upload", "1MiB", "--home", home); !strings.Contains(out, "next `kith up`") {
		t.Fatalf("config set without a daemon said: %s", out)
	}
	if got := strings.TrimSpace(mustKith(t, "config", "get", "max-upload", "--home", home)); got != "1048576" {
		t.Fatalf("config get max-upload = %q", got)
	}
	d := startDaemon(t, home)
	if st := status(t, home); st.MaxUpload != 1<<20 {
		t.Fatalf("the stored cap is not in effect: %d", st.MaxUpload)
	}
	mustKith(t, "config", "set", "max-download", "2MiB", "--home", home)
	out := mustKith(t, "config", "set", "name", "anabel", "--home", home)
	if !strings.Contains(out, "in effect now") || !strings.Contains(out, "new one") {
		t.Fatalf("config set name said: %s", out)
	}
	var inv api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", home)), &inv)
	if inv.Name != "anabel" {
		t.Fatalf("invite after a name change names %q", inv.Name)
	}
	d.stop(t)

	d = startDaemon(t, home, "--max-upload", "0")
	st := status(t, home)
	if st.MaxUpload != 0 || st.MaxDownload != 2<<20 || st.Name != "anabel" {
		t.Fatalf("after restart with --max-upload 0: %+v", st)
	}
	d.stop(t)
	d = startDaemon(t, home)
	if st := status(t, home); st.MaxUpload != 1<<20 {
		t.Fatalf("the flag outlived its run: max upload %d", st.MaxUpload)
	}
	var ls []api.Setting
	json.Unmarshal([]byte(mustKith(t, "config", "ls", "--json", "--home", home)), &ls)
	if len(ls) < 5 {
		t.Fatalf("config ls: %+v", ls)
	}
	for _, c := range []struct{ key, value, want string }{
		{"bogus", "1", "no key"},
		{"port", "99999", "1-65535"},
		{"max-upload", "fast", "bytes per second"},
		{"listen", "not-a-multiaddr", "listen address"},
		{"downloads", "relative/dir", "absolute path"},
		{"mdns", "maybe", "true or false"},
	} {
		r := kith(t, "config", "set", c.key, c.value, "--home", home)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("config set %s %s: exit %d, %q", c.key, c.value, r.code, r.stderr)
		}
	}
	d.stop(t)
}
