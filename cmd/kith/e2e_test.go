package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kith/node/api"
)

// kithBin is the kith binary built once for the end-to-end tests;
// builtDirty says whether git saw changes in the tree when it was built.
var (
	kithBin    string
	builtDirty bool
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kith-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kithBin = filepath.Join(dir, "kith")
	// -buildvcs=auto stamps the revision where git and the repository are
	// there, whatever GOFLAGS says, as a user's `go install` does.
	porcelain, _ := exec.Command("git", "status", "--porcelain").Output()
	builtDirty = len(bytes.TrimSpace(porcelain)) > 0
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", kithBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kith:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// kith runs the binary with args and returns its output and exit code.
func kith(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(kithBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "KITH_HOME=") // only --home picks the home
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running kith %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func mustKith(t *testing.T, args ...string) string {
	t.Helper()
	r := kith(t, args...)
	if r.code != 0 {
		t.Fatalf("kith %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a `kith up` child process.
type daemon struct {
	cmd  *exec.Cmd
	home string
	log  *syncBuffer
	done chan error
	// started names the daemon's log file in KITH_NAT_LOGDIR.
	started time.Time
}

func startDaemon(t *testing.T, home string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{home: home, log: &syncBuffer{}, done: make(chan error, 1)}
	// The web UI's default port is one for every home: a test that wants
	// the web UI asks for it (--web 127.0.0.1:0).
	if !slices.ContainsFunc(extra, func(a string) bool { return a == "--web" || a == "--no-web" || strings.HasPrefix(a, "--web=") }) {
		extra = append([]string{"--no-web"}, extra...)
	}
	d.cmd = exec.Command(kithBin, append([]string{"up", "--home", home, "--no-mdns",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
	})
	deadline := time.Now().Add(15 * time.Second)
	for kith(t, "status", "--home", home).code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("daemon in %s did not come up:\n%s", home, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.log)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop on SIGTERM:\n%s", d.log)
	}
	if _, err := os.Stat(filepath.Join(d.home, api.SocketFile)); !os.IsNotExist(err) {
		t.Fatalf("socket left after shutdown: %v", err)
	}
}

func friendLs(t *testing.T, home string) []api.FriendInfo {
	t.Helper()
	var fs []api.FriendInfo
	if err := json.Unmarshal([]byte(mustKith(t, "friend", "ls", "--json", "--home", home)), &fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

func waitFriend(t *testing.T, home, peerID string, online bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, f := range friendLs(t, home) {
			if f.PeerID == peerID && f.Online == online {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: friend %s never became online=%v: %+v", home, peerID, online, friendLs(t, home))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEndToEndTwoDaemons(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	da := startDaemon(t, homeA)
	db := startDaemon(t, homeB)

	var idA, idB api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	invA := strings.TrimSpace(mustKith(t, "id", "--home", homeA))
	if invA != idA.Invite && !strings.HasPrefix(invA, "kith:") {
		t.Fatalf("plain id output %q", invA)
	}
	var added api.FriendInfo
	if err := json.Unmarshal([]byte(mustKith(t, "friend", "add", idB.Invite, "--json", "--home", homeA)), &added); err != nil {
		t.Fatal(err)
	}
	if added.PeerID != idB.PeerID || added.Name != "bob" {
		t.Fatalf("friend add --json printed %+v", added)
	}
	mustKith(t, "friend", "add", idA.Invite, "--name", "al", "--home", homeB)
	waitFriend(t, homeA, idB.PeerID, true)
	waitFriend(t, homeB, idA.PeerID, true)
	if out := mustKith(t, "friend", "ls", "--home", homeB); !strings.Contains(out, "al") || !strings.Contains(out, "online") {
		t.Fatalf("friend ls table: %s", out)
	}
	// Each side estimates the other's clock from its lobby link (issue 13
	// point 3): the same clock here, so about 0, shown as ok.
	deadline := time.Now().Add(15 * time.Second)
	for {
		fs := friendLs(t, homeB)
		if len(fs) == 1 && fs[0].ClockOffsetMs != nil {
			if off := *fs[0].ClockOffsetMs; off < -5000 || off > 5000 {
				t.Fatalf("friend ls: alice's clock %d ms off, on the same machine", off)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("friend ls never showed alice's clock offset: %+v", fs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := mustKith(t, "friend", "ls", "--home", homeB); !strings.Contains(out, "CLOCK") || !strings.Contains(out, "\tok\t") && !strings.Contains(out, " ok ") {
		t.Fatalf("friend ls table has no clock column saying ok: %s", out)
	}
	var st api.Status
	json.Unmarshal([]byte(mustKith(t, "status", "--json", "--home", homeA)), &st)
	if st.FriendsOnline != 1 || st.FriendsTotal != 1 || st.PeerID != idA.PeerID {
		t.Fatalf("status: %+v", st)
	}

	mustKith(t, "friend", "rm", "bob", "--home", homeA)
	waitFriend(t, homeB, idA.PeerID, false)
	if fs := friendLs(t, homeA); len(fs) != 0 {
		t.Fatalf("alice still lists %+v", fs)
	}
	da.stop(t)
	db.stop(t)
	// After shutdown, commands say no daemon runs and how to start one.
	r := kith(t, "status", "--home", homeA)
	if r.code != 1 || !strings.Contains(r.stderr, "no daemon is running") || !strings.Contains(r.stderr, "kith up") {
		t.Fatalf("status without daemon: %+v", r)
	}
}

func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "a")
	mustKith(t, "init", "--name", "a", "--home", home)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"init twice", []string{"init", "--home", home}, 1, "already exists"},
		{"unknown flag", []string{"status", "--bogus", "--home", home}, 2, "unknown flag"},
		{"unknown command", []string{"bogus", "--home", home}, 2, "unknown command"},
		{"unknown subcommand", []string{"friend", "bogus", "--home", home}, 2, "unknown command"},
		{"group without a command", []string{"share", "--home", home}, 2, "needs a command"},
		{"missing argument", []string{"friend", "add", "--home", home}, 2, "accepts 1 arg"},
		{"no home", []string{"status", "--home", filepath.Join(dir, "none")}, 1, "kith init"},
		{"no daemon", []string{"friend", "ls", "--home", home}, 1, "no daemon is running"},
		{"bad name", []string{"init", "--name", strings.Repeat("x", 100), "--home", filepath.Join(dir, "b")}, 1, "invalid name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := kith(t, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, c.code, c.want)
			}
		})
	}
	d := startDaemon(t, home)
	own := strings.TrimSpace(mustKith(t, "id", "--home", home))
	for _, c := range []struct{ invite, want string }{
		{"hello", "garbled"},
		{own[:len(own)/2], "truncated"},
		{own, "your own invite"},
		{"", "empty"},
	} {
		r := kith(t, "friend", "add", c.invite, "--home", home)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("friend add %q: %+v", c.invite, r)
		}
	}
	d.stop(t)
}
