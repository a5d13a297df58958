package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/internal/peertext"
	"kith/node/api"
)

// tmuxTerm is a terminal in a private tmux server, running one command.
type tmuxTerm struct {
	t    *testing.T
	sock string // the server's socket: private to the test
	dir  string
	name string // the session
}

// tuiScreenWait bounds every wait for the screen.
const tuiScreenWait = 20 * time.Second

// startTmux runs `kith args...` in a detached width×height tmux session
// of a private server, which is killed when the test ends. The command's
// stderr and exit code go to files in the session's folder.
func startTmux(t *testing.T, name string, width, height int, args ...string) *tmuxTerm {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is required for the chat window test: install it (apt-get install tmux); .ci/run does")
	}
	dir := t.TempDir()
	s := &tmuxTerm{t: t, sock: filepath.Join(dir, "tmux.sock"), dir: dir, name: name}
	if len(s.sock) > 100 { // a unix socket path must be short
		sockDir, err := os.MkdirTemp("/tmp", "kt")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sockDir) })
		s.sock = filepath.Join(sockDir, "s")
	}
	var cmd strings.Builder
	cmd.WriteString("#!/bin/sh\nKITH_HOME= ")
	cmd.WriteString(tuiShellQuote(kithBin))
	for _, a := range args {
		cmd.WriteString(" " + tuiShellQuote(a))
	}
	fmt.Fprintf(&cmd, " 2>%s\necho $? >%s.tmp && mv %s.tmp %s\n",
		tuiShellQuote(s.path("stderr")), tuiShellQuote(s.path("exit")), tuiShellQuote(s.path("exit")), tuiShellQuote(s.path("exit")))
	if err := os.WriteFile(s.path("run.sh"), []byte(cmd.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("tmux", "-S", s.sock, "kill-server").Run() })
	s.tmux("-f", "/dev/null", "new-session", "-d", "-s", name,
		"-x", fmt.Sprint(width), "-y", fmt.Sprint(height), s.path("run.sh"))
	return s
}

func tuiShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (s *tmuxTerm) path(name string) string { return filepath.Join(s.dir, name) }

// tmux runs a tmux command on the private server.
func (s *tmuxTerm) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-u", "-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is the visible text of the terminal, or "" when the session has
// ended.
func (s *tmuxTerm) screen() string {
	s.t.Helper()
	out, err := exec.Command("tmux", "-u", "-S", s.sock, "capture-pane", "-p", "-t", s.name).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// waitScreen polls the screen until ok accepts it.
func (s *tmuxTerm) waitScreen(what string, ok func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(tuiScreenWait)
	for {
		scr := s.screen()
		if ok(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			stderr, _ := os.ReadFile(s.path("stderr"))
			s.t.Fatalf("screen never showed %s; it shows:\n%s\nstderr: %s", what, scr, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText polls the screen until it contains text.
func (s *tmuxTerm) waitText(text string) string {
	s.t.Helper()
	return s.waitScreen(fmt.Sprintf("%q", text), func(scr string) bool { return strings.Contains(scr, text) })
}

// typeText types text literally, then presses the named keys.
func (s *tmuxTerm) typeText(text string, keys ...string) {
	s.t.Helper()
	if text != "" {
		s.tmux("send-keys", "-t", s.name, "-l", text)
	}
	if len(keys) > 0 {
		s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...)
	}
}

// wait waits for the command to end and returns its exit code and
// stderr.
func (s *tmuxTerm) wait() (int, string) {
	s.t.Helper()
	deadline := time.Now().Add(tuiScreenWait)
	for {
		b, err := os.ReadFile(s.path("exit"))
		if err == nil {
			var code int
			if _, err := fmt.Sscan(string(b), &code); err != nil {
				s.t.Fatalf("exit file %q: %v", b, err)
			}
			stderr, _ := os.ReadFile(s.path("stderr"))
			return code, string(stderr)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("command did not exit; the screen shows:\n%s", s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tuiLineWith returns the first line of screen containing text.
func tuiLineWith(screen, text string) string {
	for l := range strings.SplitSeq(screen, "\n") {
		if strings.Contains(l, text) {
			return l
		}
	}
	return ""
}

func TestChatTUI(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB, homeC := filepath.Join(dir, "alice"), filepath.Join(dir, "bob"), filepath.Join(dir, "carol")
	for _, h := range []string{homeA, homeB, homeC} {
		mustKith(t, "init", "--name", filepath.Base(h), "--home", h)
	}

	// Outside a terminal, `kith chat` points to the script commands.
	if r := kith(t, "chat", "--home", homeA); r.code != exitError || !strings.Contains(r.stderr, "kith chat send") {
		t.Fatalf("chat without a terminal: exit %d, stderr %q", r.code, r.stderr)
	}
	// Without a daemon, it says how to start one before drawing anything.
	nd := startTmux(t, "nodaemon", 100, 30, "--home", homeA, "chat")
	if code, stderr := nd.wait(); code != exitError || !strings.Contains(stderr, "kith up") {
		t.Fatalf("chat without a daemon: exit %d, stderr %q", code, stderr)
	}

	// alice is friends with bob and carol.
	var ids [3]api.InviteInfo
	for i, h := range []string{homeA, homeB, homeC} {
		startDaemon(t, h)
		if err := json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", h)), &ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	idA, idB, idC := ids[0], ids[1], ids[2]
	for _, o := range []struct {
		home string
		id   api.InviteInfo
	}{{homeB, idB}, {homeC, idC}} {
		mustKith(t, "friend", "add", o.id.Invite, "--home", homeA)
		mustKith(t, "friend", "add", idA.Invite, "--home", o.home)
		waitFriend(t, homeA, o.id.PeerID, true)
		waitFriend(t, o.home, idA.PeerID, true)
	}

	win := startTmux(t, "chat", 100, 30, "--home", homeA, "chat")
	// Friends never talked to are listed by name: bob comes first and is
	// shown.
	win.waitScreen("bob and carol online in the friends list", func(s string) bool {
		return strings.Contains(s, "Friends (2)") && strings.Contains(s, "● bob") && strings.Contains(s, "● carol") &&
			strings.Contains(s, "│ bob ● online") && strings.Contains(s, "No messages yet")
	})

	// A message typed in the window shows, is delivered, and is in
	// bob's history.
	win.typeText("hello-from-a", "Enter")
	win.waitScreen("the sent message delivered", func(s string) bool {
		return strings.Contains(tuiLineWith(s, "me: hello-from-a"), "✓")
	})
	tuiWaitHistory(t, homeB, idA.PeerID, func(m api.Message) bool { return !m.Out && m.Text == "hello-from-a" })

	// bob's message appears live.
	mustKith(t, "chat", "send", "--home", homeB, idA.PeerID, "hello-from-b")
	win.waitText("bob: hello-from-b")

	// bob typing shows as a line; the typing notice is best effort, so
	// it is repeated until it shows.
	cb := api.NewClient(homeB)
	deadline := time.Now().Add(tuiScreenWait)
	for !strings.Contains(win.screen(), "bob is typing…") {
		if time.Now().After(deadline) {
			t.Fatalf("typing never showed:\n%s", win.screen())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := cb.ChatTyping(ctx, idA.PeerID); err != nil {
			t.Fatal(err)
		}
		cancel()
		tuiWaitUntil(api.TypingInterval, func() bool { return strings.Contains(win.screen(), "bob is typing…") })
	}

	// An oversize paste is refused with the reason, and the window
	// goes on working.
	big := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 70_000)), 0o600); err != nil {
		t.Fatal(err)
	}
	win.tmux("load-buffer", "-b", "big", big)
	win.tmux("paste-buffer", "-p", "-d", "-b", "big", "-t", win.name)
	win.waitText("xxxxxxxxxx") // the paste is in the input line
	win.typeText("", "Enter")
	win.waitText(fmt.Sprintf("not sent: message longer than %d bytes", api.MaxTextSize))
	win.typeText("", "C-u")
	win.typeText("after-error", "Enter")
	win.waitText("me: after-error")
	tuiWaitHistory(t, homeB, idA.PeerID, func(m api.Message) bool { return m.Text == "after-error" })

	// carol's message counts as unread while bob is shown; Tab shows
	// carol's conversation and marks it read.
	mustKith(t, "chat", "send", "--home", homeC, idA.PeerID, "hi-from-c")
	win.waitScreen("carol's unread count", func(s string) bool {
		return strings.Contains(tuiLineWith(s, "● carol"), "1 │") && !strings.Contains(s, "hi-from-c")
	})
	win.typeText("", "Tab")
	win.waitScreen("carol's conversation", func(s string) bool {
		return strings.Contains(s, "│ carol ● online") && strings.Contains(s, "carol: hi-from-c") &&
			!strings.Contains(tuiLineWith(s, "● carol"), "1 │")
	})
	ca := api.NewClient(homeA)
	tuiWaitUntil(tuiScreenWait, func() bool { return tuiUnread(t, ca, idC.PeerID) == 0 })
	if n := tuiUnread(t, ca, idC.PeerID); n != 0 {
		t.Fatalf("carol's chat still has %d unread after it was shown", n)
	}
	win.typeText("", "Up") // back to bob: the input is empty
	win.waitText("│ bob ● online")

	// It fits an 80x24 terminal, and follows a resize.
	win.tmux("resize-window", "-t", win.name, "-x", "80", "-y", "24")
	scr := win.waitScreen("the window redrawn at 80x24", func(s string) bool {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return len(lines) == 24 && strings.Contains(lines[23], "Esc quit") &&
			strings.Contains(s, "Friends (2)") && strings.Contains(s, "me: after-error")
	})
	t.Logf("the window at 80x24:\n%s", scr)
	for i, l := range strings.Split(scr, "\n") {
		if w := len([]rune(l)); w > 80 {
			t.Fatalf("line %d is %d columns wide:\n%s", i, w, scr)
		}
	}

	// Esc quits cleanly.
	win.typeText("", "Escape")
	if code, stderr := win.wait(); code != 0 {
		t.Fatalf("chat window exit %d, stderr %q", code, stderr)
	}
}

// tuiWaitHistory waits until the history of home with friend has a message
// ok accepts.
func tuiWaitHistory(t *testing.T, home, friend string, ok func(api.Message) bool) {
	t.Helper()
	deadline := time.Now().Add(tuiScreenWait)
	for {
		var ms []api.Message
		if err := json.Unmarshal([]byte(mustKith(t, "chat", "log", "--home", home, friend, "--json")), &ms); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if ok(m) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: message never in the history: %+v", home, ms)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tuiUnread returns the unread count of the chat with friend.
func tuiUnread(t *testing.T, c *api.Client, friend string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	convs, err := c.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cv := range convs {
		if cv.PeerID == friend {
			return cv.Unread
		}
	}
	t.Fatalf("no chat with %s in %+v", friend, convs)
	return 0
}

// tuiWaitUntil polls cond for at most d.
func tuiWaitUntil(d time.Duration, cond func() bool) {
	for end := time.Now().Add(d); time.Now().Before(end) && !cond(); {
		time.Sleep(50 * time.Millisecond)
	}
}

func TestChatTUIMergeAndClean(t *testing.T) {
	msg := func(seq uint64, delivered bool) api.Message {
		return api.Message{Seq: seq, Out: true, Text: fmt.Sprint(seq), Delivered: delivered}
	}
	ms := mergeMessages(nil, []api.Message{msg(2, false), msg(3, false)})
	ms = mergeMessages(ms, []api.Message{msg(1, false), msg(3, true), msg(5, false)})
	ms = mergeMessages(ms, []api.Message{msg(3, false)}) // a stale answer
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%d:%v", m.Seq, m.Delivered))
	}
	if want := "1:false 2:false 3:true 5:false"; strings.Join(got, " ") != want {
		t.Fatalf("merged %v, want %s", got, want)
	}

	if got := peertext.Text("a\x1b[2Jb\tc\r\nd\u202ee\u009b"); got != `a\x1b[2Jb c`+"\n"+`d\u202ee\u009b` {
		t.Fatalf("peertext.Text: %q", got)
	}
	if got := truncate("abcdef", 4); got != "abc…" {
		t.Fatalf("truncate: %q", got)
	}
}
