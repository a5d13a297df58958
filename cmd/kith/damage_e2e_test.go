package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/node"
	"kith/node/api"
)

// runUp runs `kith up` and returns what it printed and its exit code, for a
// home it must refuse (it gives up after a few seconds if it does not).
func runUp(t *testing.T, home string) result {
	t.Helper()
	cmd := exec.Command(kithBin, "up", "--home", home, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("kith up ran on a home it should refuse:\n%s%s", out.String(), errb.String())
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// A damaged kith.db makes `kith up` refuse with a message that names the
// file and `kith repair` (it used to panic); `kith repair` keeps the
// damaged file beside a new one, and the node starts again.
func TestDamagedDatabaseRefusedAndRepaired(t *testing.T) {
	for _, damage := range []string{"truncated", "garbage"} {
		t.Run(damage, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "ana")
			mustKith(t, "init", "--name", "ana", "--home", home)
			d := startDaemon(t, home)
			mustKith(t, "identity", "new", "owl", "--home", home)
			d.stop(t)
			db := filepath.Join(home, api.DBFile)
			fi, err := os.Stat(db)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "truncated":
				os.Truncate(db, fi.Size()/2)
			case "garbage":
				// Every page but the two meta pages: whatever bbolt reaches
				// from its root is garbage (a tenth of the pages, picked at
				// random, may all be free ones on a small database).
				f, _ := os.OpenFile(db, os.O_RDWR, 0)
				r := rand.New(rand.NewPCG(3, 4))
				junk := make([]byte, 4096)
				for p := int64(2); p < fi.Size()/4096; p++ {
					for i := range junk {
						junk[i] = byte(r.Uint32())
					}
					f.WriteAt(junk, 4096*p)
				}
				f.Close()
			}
			r := runUp(t, home)
			if r.code != 1 || strings.Contains(r.stderr, "panic") || !strings.Contains(r.stderr, "damaged") ||
				!strings.Contains(r.stderr, "kith repair") || !strings.Contains(r.stderr, db) {
				t.Fatalf("kith up on a damaged database: exit %d\n%s", r.code, r.stderr)
			}
			out := mustKith(t, "repair", "--home", home)
			if !strings.Contains(out, "damaged file is kept as") {
				t.Fatalf("kith repair said: %s", out)
			}
			kept, _ := filepath.Glob(db + ".damaged-*")
			if len(kept) != 1 {
				t.Fatalf("damaged copies kept: %v", kept)
			}
			d = startDaemon(t, home)
			d.stop(t)
		})
	}
}

// `kith repair` refuses while the daemon runs.
func TestRepairRefusedWhileRunning(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	mustKith(t, "init", "--name", "ana", "--home", home)
	startDaemon(t, home)
	if r := kith(t, "repair", "--home", home); r.code != 1 || !strings.Contains(r.stderr, "stop it") {
		t.Fatalf("repair with the daemon up: %+v", r)
	}
}

// A home whose identity.key is gone is not "no node here" (which led to a
// new identity inside the old database, refused by every friend): every
// command says the key is missing and how to restore it, init refuses
// without --new-identity, and with it the node starts under a new ID. A
// damaged or empty key gets a clear message too, and a key others may
// read is tightened.
func TestIdentityKeyLostOrDamaged(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	mustKith(t, "init", "--name", "ana", "--home", home)
	var before api.InviteInfo
	d := startDaemon(t, home)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", home)), &before)
	d.stop(t)
	key := filepath.Join(home, node.KeyFile)
	good, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		setup func()
		want  string
	}{
		{"missing", func() { os.Remove(key) }, "identity key is missing"},
		{"garbage", func() { os.WriteFile(key, []byte("not a key at all"), 0o600) }, "identity key is damaged"},
		{"empty", func() { os.WriteFile(key, nil, 0o600) }, "identity key is damaged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.setup()
			if r := runUp(t, home); r.code != 1 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "new-identity") {
				t.Fatalf("kith up: exit %d: %s", r.code, r.stderr)
			}
			if c.name == "missing" {
				for _, args := range [][]string{{"status"}, {"init", "--name", "ana"}} {
					r := kith(t, append(args, "--home", home)...)
					if r.code != 1 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "create one with") {
						t.Fatalf("kith %v: exit %d: %s", args, r.code, r.stderr)
					}
				}
			}
		})
	}

	os.WriteFile(key, good, 0o644)
	d = startDaemon(t, home)
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity.key left at %v", fi.Mode().Perm())
	}
	d.stop(t)

	os.Remove(key)
	mustKith(t, "init", "--new-identity", "--home", home)
	d = startDaemon(t, home)
	var after api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", home)), &after)
	if after.PeerID == before.PeerID || after.PeerID == "" || after.Name != "ana" {
		t.Fatalf("after --new-identity: %+v (before %s)", after, before.PeerID)
	}
	d.stop(t)
}
