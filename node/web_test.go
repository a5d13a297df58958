package node

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// newTestWebServer is a webServer with only its login state and a real
// loopback listener (for its address); it serves nothing.
func newTestWebServer(t *testing.T) *webServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &webServer{ln: ln, port: port, cookie: "kith_session_" + port,
		tokens: map[[32]byte]time.Time{}, sessions: map[[32]byte]*webSession{}}
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	i := strings.Index(link, "/login?token=")
	if i < 0 {
		t.Fatalf("login link %q", link)
	}
	return link[i+len("/login?token="):]
}

// TestWebLoginTokensBounded asks for 10x MaxWebLoginTokens login links:
// the server holds at most MaxWebLoginTokens, the newest work (once), the
// oldest were forgotten.
func TestWebLoginTokensBounded(t *testing.T) {
	w := newTestWebServer(t)
	var toks []string
	for range 10 * MaxWebLoginTokens {
		l, exp := w.loginLink()
		if time.Until(exp) > WebLoginTTL || time.Until(exp) < WebLoginTTL-time.Minute {
			t.Fatalf("a login link until %v", exp)
		}
		toks = append(toks, tokenOf(t, l))
	}
	if n := len(w.tokens); n != MaxWebLoginTokens {
		t.Fatalf("%d login tokens held, want the bound %d", n, MaxWebLoginTokens)
	}
	if _, ok := w.useToken(toks[0]); ok {
		t.Fatal("the oldest token still works")
	}
	last := toks[len(toks)-1]
	if _, ok := w.useToken(last); !ok {
		t.Fatal("the newest token does not work")
	}
	if _, ok := w.useToken(last); ok {
		t.Fatal("a token worked twice")
	}
	for _, bad := range []string{"", "x", strings.Repeat("a", 200)} {
		if _, ok := w.useToken(bad); ok {
			t.Fatalf("token %q worked", bad)
		}
	}
}

// TestWebLoginTokenExpires: a token past its expiry does not work.
func TestWebLoginTokenExpires(t *testing.T) {
	w := newTestWebServer(t)
	l, _ := w.loginLink()
	for k := range w.tokens {
		w.tokens[k] = time.Now().Add(-time.Second)
	}
	if _, ok := w.useToken(tokenOf(t, l)); ok {
		t.Fatal("an expired token worked")
	}
}

// TestWebSessionsBounded logs in 4x MaxWebSessions times: at most
// MaxWebSessions sessions are held, the least recently used end, the
// newest and one kept in use stay.
func TestWebSessionsBounded(t *testing.T) {
	w := newTestWebServer(t)
	req := func(id string) *http.Request {
		r, _ := http.NewRequest("GET", w.url(), nil)
		r.AddCookie(&http.Cookie{Name: w.cookie, Value: id})
		return r
	}
	var ids []string
	for i := range 4 * MaxWebSessions {
		l, _ := w.loginLink()
		id, ok := w.useToken(tokenOf(t, l))
		if !ok {
			t.Fatal("login failed")
		}
		ids = append(ids, id)
		if i > 0 {
			// The first session is used all along: it stays.
			if _, _, ok := w.session(req(ids[0])); !ok {
				t.Fatalf("the session in use ended after %d logins", i+1)
			}
		}
		time.Sleep(time.Millisecond) // distinct last-use times
	}
	if n := len(w.sessions); n != MaxWebSessions {
		t.Fatalf("%d sessions held, want the bound %d", n, MaxWebSessions)
	}
	if _, _, ok := w.session(req(ids[1])); ok {
		t.Fatal("an old unused session still works")
	}
	if _, _, ok := w.session(req(ids[len(ids)-1])); !ok {
		t.Fatal("the newest session does not work")
	}
	if _, _, ok := w.session(req("forged")); ok {
		t.Fatal("a forged session id works")
	}
	// An idle session ends.
	s, _, _ := w.session(req(ids[0]))
	s.lastUsed = time.Now().Add(-WebSessionIdle - time.Minute)
	if _, _, ok := w.session(req(ids[0])); ok {
		t.Fatal("an idle session still works")
	}
}

// TestWebHostAllowed: only this port on a loopback address or localhost.
func TestWebHostAllowed(t *testing.T) {
	w := newTestWebServer(t)
	p := w.port
	for host, want := range map[string]bool{
		"127.0.0.1:" + p: true, "localhost:" + p: true, "LOCALHOST:" + p: true, "[::1]:" + p: true, "127.1.2.3:" + p: true,
		"127.0.0.1": false, "localhost": false, "127.0.0.1:1": false, "evil.example:" + p: false,
		"localhost.evil.example:" + p: false, "127.0.0.1.nip.io:" + p: false, "10.0.0.1:" + p: false,
		"[fe80::1%lo]:" + p: false, "0.0.0.0:" + p: false, "": false,
	} {
		if got := w.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestParseWebAddr: the web UI listens on loopback only.
func TestParseWebAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8731": "127.0.0.1:8731", "localhost:9000": "127.0.0.1:9000", "[::1]:8080": "[::1]:8080",
		" 127.0.0.1:0 ": "127.0.0.1:0",
	} {
		if got, err := parseWebAddr(in); err != nil || got != want {
			t.Errorf("parseWebAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"0.0.0.0:8731", ":8731", "[::]:80", "192.168.1.1:80", "example.com:80", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:x"} {
		if _, err := parseWebAddr(bad); err == nil {
			t.Errorf("parseWebAddr(%q) accepted", bad)
		}
	}
}
