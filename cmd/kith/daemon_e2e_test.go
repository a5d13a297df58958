package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kith/node"
	"kith/node/api"
)

// An api.sock deleted while the daemon runs is made again: the CLI keeps
// working (it used to say "no daemon is running"), and a second `kith up`
// names the process that holds the home (it used to say only "a daemon
// is already running", while the CLI said none was).
func TestSocketDeletedWhileRunning(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	mustKith(t, "init", "--name", "ana", "--home", home)
	d := startDaemon(t, home)
	sock := filepath.Join(home, api.SocketFile)
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if r := kith(t, "status", "--home", home); r.code != 0 {
		t.Fatalf("status after the socket was deleted: exit %d: %s", r.code, r.stderr)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket not made again as 0600: %v", err)
	}
	r := runUp(t, home)
	if want := fmt.Sprintf("process %d", d.cmd.Process.Pid); r.code != 1 || !strings.Contains(r.stderr, "already running") || !strings.Contains(r.stderr, want) {
		t.Fatalf("second kith up: exit %d, %q; want it to name %s", r.code, r.stderr, want)
	}
	d.stop(t)
	if _, err := os.Stat(filepath.Join(home, node.PIDFile)); !os.IsNotExist(err) {
		t.Fatalf("pid file left after a clean stop: %v", err)
	}
}

// SIGTERM while a long `share add` indexes stops the daemon at once and
// cleanly (exit 0); it used to wait 5 s for the request and exit 1 with
// "context deadline exceeded".
func TestStopDuringShareAdd(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	mustKith(t, "init", "--name", "ana", "--home", home)
	d := startDaemon(t, home)
	dir := filepath.Join(t.TempDir(), "big")
	os.MkdirAll(dir, 0o700)
	// 64 sparse files of 512 MiB: 32 GiB to hash, none of it on disk.
	for i := range 64 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%02d.bin", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(512 << 20)
		f.Close()
	}
	add := exec.Command(kithBin, "share", "add", dir, "--home", home)
	var addErr syncBuffer
	add.Stderr = &addErr
	if err := add.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the indexing start
	d.cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-d.done:
		d.done <- exitErr
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop:\n%s", d.log)
	}
	add.Wait()
	if exitErr != nil {
		t.Fatalf("daemon exit on SIGTERM during share add: %v\n%s", exitErr, d.log)
	}
	if strings.Contains(d.log.String(), "deadline exceeded") {
		t.Fatalf("shutdown waited for the request:\n%s", d.log)
	}
	if add.ProcessState.ExitCode() == 0 || !strings.Contains(addErr.String(), "daemon is stopping") {
		t.Fatalf("share add: exit %d, %q; want it told the daemon stopped", add.ProcessState.ExitCode(), addErr.String())
	}
}
