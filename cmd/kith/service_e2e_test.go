package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile is the shipped systemd user unit.
const unitFile = "../../contrib/systemd/kith.service"

// unitExecStart returns the unit's ExecStart command with %h replaced.
func unitExecStart(t *testing.T, home string) []string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			return strings.Fields(strings.ReplaceAll(v, "%h", home))
		}
	}
	t.Fatal("no ExecStart in the unit")
	return nil
}

// The daemon started as the unit starts it (its ExecStart, the default
// home, NOTIFY_SOCKET; only held to loopback) tells the service manager it is ready once its API
// answers, and that it stops on SIGTERM, and exits 0.
func TestServiceUnitStart(t *testing.T) {
	home := t.TempDir()
	argv := unitExecStart(t, home)
	bin := argv[0]
	if err := os.MkdirAll(filepath.Dir(bin), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(kithBin, bin); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	kithHome := filepath.Join(home, ".local", "share", "kith")
	mustKith(t, "init", "--name", "svc", "--home", kithHome)

	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The unit's command, held to loopback and no mDNS as every test is.
	argv = append(argv, "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns")
	cmd := exec.Command(bin, argv[1:]...)
	cmd.Env = append(env, "NOTIFY_SOCKET="+sock)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	read := func() string {
		ln.SetReadDeadline(time.Now().Add(20 * time.Second))
		b := make([]byte, 1024)
		n, err := ln.Read(b)
		if err != nil {
			t.Fatalf("no notification from the daemon: %v\n%s", err, log.String())
		}
		return string(b[:n])
	}
	if msg := read(); !strings.Contains(msg, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	if r := kith(t, "status", "--home", kithHome); r.code != 0 {
		t.Fatalf("status once READY: %+v", r)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if msg := read(); !strings.Contains(msg, "STOPPING=1") {
		t.Fatalf("notification on SIGTERM %q, want STOPPING=1", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit on SIGTERM: %v\n%s", err, log.String())
	}
}

// The unit passes systemd's own check, where systemd-analyze is installed
// (.ci/run installs it).
func TestServiceUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd; .ci/run installs it)")
	}
	home := t.TempDir()
	bin := unitExecStart(t, home)[0]
	os.MkdirAll(filepath.Dir(bin), 0o700)
	if err := os.Link(kithBin, bin); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(home, "run")
	os.MkdirAll(run, 0o700)
	cmd := exec.Command(analyze, "--user", "verify", unitFile)
	cmd.Env = []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + run, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
