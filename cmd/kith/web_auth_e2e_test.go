package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"kith/node/api"
)

// webClient is a plain HTTP client of the web UI: no redirects, an
// optional cookie jar.
func webClient(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// webDo sends one request with extra headers ("Host" sets the Host
// header) and returns the status, the body (of a stream, what came
// first) and the header.
func webDo(t *testing.T, c *http.Client, method, u, body string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		// A stream does not end: read what comes at once.
		b := make([]byte, 64<<10)
		n, _ := io.ReadAtLeast(resp.Body, b, 1)
		return resp.StatusCode, string(b[:n]), resp.Header
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(b), resp.Header
}

// webRoutes are requests of every kind the web server serves: the page's
// files, the API (reads, the event stream, the search stream, changes),
// /metrics and the page's own endpoints.
var webRoutes = []struct{ method, path, body string }{
	{"GET", "/", ""}, {"GET", "/index.html", ""}, {"GET", "/app.js", ""}, {"GET", "/lib/api.js", ""},
	{"GET", "/pages/chat.js", ""}, {"GET", "/style.css", ""}, {"GET", "/icon.svg", ""}, {"HEAD", "/", ""},
	{"GET", "/v1/status", ""}, {"GET", "/v1/invite", ""}, {"GET", "/v1/friends", ""}, {"GET", "/v1/events", ""},
	{"GET", "/v1/config", ""}, {"GET", "/v1/shares", ""}, {"GET", "/v1/shares/files", ""}, {"GET", "/v1/downloads", ""},
	{"GET", "/v1/search?q=film", ""}, {"GET", "/v1/chat", ""}, {"GET", "/v1/identities", ""}, {"GET", "/v1/lobbies", ""},
	{"GET", "/v1/distant", ""}, {"GET", "/v1/introductions", ""}, {"GET", "/metrics", ""},
	{"GET", "/web/session", ""}, {"GET", "/web/file/" + strings.Repeat("ab", 32), ""},
	{"POST", "/v1/identities", `{"nick":"intruder"}`}, {"POST", "/v1/friends", `{"invite":"kith:x"}`},
	{"POST", "/v1/shares", `{"dir":"/","browsable":true}`}, {"POST", "/v1/downloads", `{"link":"kith://x"}`},
	{"PUT", "/v1/config/name", `{"value":"intruder"}`}, {"DELETE", "/v1/friends/bob", ""},
	{"PATCH", "/v1/friends/bob", `{"name":"x"}`}, {"POST", "/web/qr", `{"text":"x"}`}, {"POST", "/web/logout", ""},
}

// checkWebHeaders checks the headers every answer of the web server has.
func checkWebHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows inline script or eval: %q", what, csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("%s: nosniff / frame options: %v", what, h)
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s: a CORS header: %s: %s", what, k, h.Get(k))
		}
	}
}

// TestWebUIAuth attacks the web server of a running daemon over HTTP:
// every page and API request without the session cookie is refused;
// the login link works once and sets an HttpOnly, SameSite=Strict
// cookie; a change without the session's CSRF token, or with another's,
// is refused and changes nothing; a foreign Host (DNS rebinding), a
// foreign Origin or another site's fetch is refused even with the cookie
// and the token; there is no CORS; the socket-only endpoints (login
// links, pprof) are not served; /metrics is served behind the login;
// logging out ends the session; the web UI's address must be loopback.
func TestWebUIAuth(t *testing.T) {
	home := filepath.Join(t.TempDir(), "alice")
	mustKith(t, "init", "--name", "alice", "--home", home)
	webUp(t, home)
	link := webLoginLink(t, home)
	base := webBase(link)
	u, _ := url.Parse(base)
	port := u.Port()
	anon := webClient(nil)

	// Without the cookie: everything is refused, and says nothing.
	var st api.Status
	json.Unmarshal([]byte(mustKith(t, "status", "--json", "--home", home)), &st)
	for _, r := range webRoutes {
		code, body, h := webDo(t, anon, r.method, base+r.path, r.body, nil)
		if code != http.StatusUnauthorized || strings.Contains(body, st.PeerID) || strings.Contains(body, "kith_") {
			t.Errorf("%s %s without the cookie: %d %q", r.method, r.path, code, body)
		}
		checkWebHeaders(t, r.method+" "+r.path+" (refused)", h)
	}
	// A made-up cookie is no session either.
	jarFake, _ := cookiejar.New(nil)
	jarFake.SetCookies(u, []*http.Cookie{{Name: "kith_session_" + port, Value: "forged"}})
	if code, body, _ := webDo(t, webClient(jarFake), "GET", base+"/v1/status", "", nil); code != http.StatusUnauthorized {
		t.Errorf("a forged session cookie: %d %q", code, body)
	}
	if code, _, _ := webDo(t, anon, "GET", base+"/login?token=not-a-token", "", nil); code != http.StatusForbidden {
		t.Errorf("a made-up login token: %d", code)
	}

	// The login link, once.
	jar, _ := cookiejar.New(nil)
	c := webClient(jar)
	req, _ := http.NewRequest("GET", link, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "kith_session_"+port {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusOK || session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" {
		t.Fatalf("login: %d, cookie %+v", resp.StatusCode, session)
	}
	checkWebHeaders(t, "login", resp.Header)
	if code, body, h := webDo(t, webClient(nil), "GET", link, "", nil); code != http.StatusForbidden || h.Get("Set-Cookie") != "" {
		t.Fatalf("the login link used a second time: %d %q, cookie %q", code, body, h.Get("Set-Cookie"))
	}
	if code, _, _ := webDo(t, webClient(nil), "POST", webLoginLink(t, home), "", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("a login link posted: %d", code)
	}

	// Logged in: the page, the API and /metrics.
	for _, p := range []string{"/", "/app.js", "/v1/status", "/v1/friends"} {
		if code, body, h := webDo(t, c, "GET", base+p, "", nil); code != http.StatusOK {
			t.Errorf("GET %s logged in: %d %q", p, code, body)
		} else {
			checkWebHeaders(t, "GET "+p, h)
		}
	}
	code, body, h := webDo(t, c, "GET", base+"/metrics", "", nil)
	if code != http.StatusOK || !strings.Contains(body, "kith_") || !strings.Contains(body, "libp2p_") || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics logged in: %d %q", code, body[:min(len(body), 300)])
	}
	if code, body, _ := webDo(t, c, "GET", base+"/app.js", "", nil); code != http.StatusOK || !strings.Contains(body, "import") {
		t.Fatalf("app.js: %d", code)
	} else if _, _, h := webDo(t, c, "GET", base+"/app.js", "", nil); h.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("app.js type %q", h.Get("Content-Type"))
	}
	_, sbody, _ := webDo(t, c, "GET", base+"/web/session", "", nil)
	var sess struct {
		CSRF string `json:"csrf"`
	}
	if err := json.Unmarshal([]byte(sbody), &sess); err != nil || len(sess.CSRF) < 32 {
		t.Fatalf("/web/session: %q", sbody)
	}
	if strings.Contains(sess.CSRF, session.Value) || strings.Contains(session.Value, sess.CSRF) {
		t.Fatal("the CSRF token is the session id")
	}

	identities := func() int {
		var ids []json.RawMessage
		json.Unmarshal([]byte(mustKith(t, "identity", "ls", "--json", "--home", home)), &ids)
		return len(ids)
	}
	good := map[string]string{"X-Kith-CSRF": sess.CSRF}
	// Changes without the token, or with a wrong one: refused, nothing made.
	for _, hdr := range []map[string]string{nil, {"X-Kith-CSRF": "wrong"}, {"X-Kith-CSRF": session.Value}} {
		code, body, _ := webDo(t, c, "POST", base+"/v1/identities", `{"nick":"intruder"}`, hdr)
		if code != http.StatusForbidden || !strings.Contains(body, "web_csrf") {
			t.Errorf("a change with CSRF header %v: %d %q", hdr, code, body)
		}
	}
	for _, r := range webRoutes {
		if r.method == "GET" || r.method == "HEAD" {
			continue
		}
		if code, body, _ := webDo(t, c, r.method, base+r.path, r.body, nil); code != http.StatusForbidden {
			t.Errorf("%s %s logged in, without the CSRF token: %d %q", r.method, r.path, code, body)
		}
	}
	// A token of another session does not do either.
	jar2, _ := cookiejar.New(nil)
	c2 := webClient(jar2)
	webDo(t, c2, "GET", webLoginLink(t, home), "", nil)
	_, sbody2, _ := webDo(t, c2, "GET", base+"/web/session", "", nil)
	var sess2 struct {
		CSRF string `json:"csrf"`
	}
	json.Unmarshal([]byte(sbody2), &sess2)
	if sess2.CSRF == "" || sess2.CSRF == sess.CSRF {
		t.Fatalf("a second session's CSRF token: %q", sbody2)
	}
	if code, _, _ := webDo(t, c, "POST", base+"/v1/identities", `{"nick":"intruder"}`, map[string]string{"X-Kith-CSRF": sess2.CSRF}); code != http.StatusForbidden {
		t.Errorf("a change with another session's CSRF token: %d", code)
	}
	if n := identities(); n != 0 {
		t.Fatalf("refused changes made %d identities", n)
	}

	// Foreign Host headers (a DNS rebinding page sends its own name), a
	// foreign Origin, another site's fetch: refused with cookie and token.
	for _, hdr := range []map[string]string{
		{"Host": "evil.example:" + port},
		{"Host": "127.0.0.1.evil.example:" + port},
		{"Host": "localhost.evil.example:" + port},
		{"Host": "evil.example"},
		{"Host": "127.0.0.1"}, // no port: a browser always sends a non-default one
		{"Host": "127.0.0.1:1"},
		{"Host": "10.0.0.1:" + port},
		{"Origin": "http://evil.example"},
		{"Origin": "http://127.0.0.1:1"},
		{"Origin": "http://localhost:" + port}, // not the origin the page was opened at
		{"Origin": "null"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"}, // another port of 127.0.0.1 is the same site
	} {
		for k, v := range good {
			hdr[k] = v
		}
		for _, r := range []struct{ method, path, body string }{{"GET", "/v1/status", ""}, {"GET", "/", ""}, {"POST", "/v1/identities", `{"nick":"intruder"}`}} {
			code, body, h := webDo(t, c, r.method, base+r.path, r.body, hdr)
			if code != http.StatusForbidden && code != http.StatusMisdirectedRequest || strings.Contains(body, st.PeerID) {
				t.Errorf("%s %s with %v: %d %q", r.method, r.path, hdr, code, body)
			}
			checkWebHeaders(t, fmt.Sprint(hdr), h)
		}
	}
	// A CORS preflight is refused and grants nothing.
	if code, _, h := webDo(t, c, "OPTIONS", base+"/v1/identities", "", map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}); code == http.StatusOK || code == http.StatusNoContent {
		t.Errorf("a CORS preflight: %d %v", code, h)
	}
	if n := identities(); n != 0 {
		t.Fatalf("refused changes made %d identities", n)
	}
	// The same change, from this page: done.
	if code, body, _ := webDo(t, c, "POST", base+"/v1/identities", `{"nick":"alice"}`, map[string]string{"X-Kith-CSRF": sess.CSRF, "Origin": base, "Sec-Fetch-Site": "same-origin"}); code/100 != 2 || identities() != 1 {
		t.Fatalf("a change with the CSRF token: %d %q", code, body)
	}
	// localhost and [::1] name the server too (if it listens there).
	if code, _, _ := webDo(t, c, "GET", base+"/v1/status", "", map[string]string{"Host": "localhost:" + port}); code != http.StatusUnauthorized && code != http.StatusOK {
		t.Errorf("Host localhost: %d", code)
	}

	// The socket-only endpoints are not served to browsers.
	for _, p := range []string{"/v1/web", "/v1/web/login", "/debug/pprof/", "/debug/pprof/cmdline"} {
		method := "GET"
		if p == "/v1/web/login" {
			method = "POST"
		}
		if code, body, _ := webDo(t, c, method, base+p, "", good); code != http.StatusNotFound {
			t.Errorf("%s %s on the web listener: %d %q", method, p, code, body)
		}
	}
	// Paths that climb out of the page's files.
	for _, p := range []string{"/../go.mod", "/%2e%2e/web.go", "/lib/../../web.go", "/web.go", "/webui/app.js"} {
		if code, _, _ := webDo(t, c, "GET", base+p, "", nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d", p, code)
		}
	}

	// Logging out ends the session (the other one stays).
	if code, _, _ := webDo(t, c, "POST", base+"/web/logout", "", good); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := webDo(t, c, "GET", base+"/v1/status", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
	req, _ = http.NewRequest("GET", base+"/v1/status", nil)
	req.AddCookie(session) // the old cookie, kept by a thief
	if resp, err := anon.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the logged-out cookie: %v %v", resp.StatusCode, err)
	}
	if code, _, _ := webDo(t, c2, "GET", base+"/v1/status", "", nil); code != http.StatusOK {
		t.Fatalf("the other session after a logout: %d", code)
	}

	// The web UI's address must be loopback.
	for _, bad := range []string{"0.0.0.0:8080", "192.168.1.2:8080", "[::]:8080", "example.com:80"} {
		if r := kith(t, "config", "set", "web", bad, "--home", home); r.code == 0 {
			t.Errorf("config set web %s accepted", bad)
		}
	}
	home2 := filepath.Join(t.TempDir(), "bob")
	mustKith(t, "init", "--name", "bob", "--home", home2)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	free := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kithBin, "up", "--home", home2, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0",
		"--web", fmt.Sprintf("0.0.0.0:%d", free)).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "loopback") {
		t.Errorf("kith up --web 0.0.0.0: %v %s", err, out)
	}
	// --no-web: nothing listens, and `kith web` says why.
	startDaemon(t, home2, "--no-web")
	if r := kith(t, "web", "--no-open", "--home", home2); r.code == 0 || !strings.Contains(r.stderr, "not running") || !strings.Contains(r.stderr, "--no-web") {
		t.Errorf("kith web with --no-web: %+v", r)
	}
	var info struct {
		Running bool   `json:"running"`
		URL     string `json:"url"`
	}
	json.Unmarshal([]byte(apiCall(t, home2, "GET", "/v1/web", "")), &info)
	if info.Running || info.URL != "" {
		t.Errorf("GET /v1/web with --no-web: %+v", info)
	}
}

// evilPage is another site's page (here: another port of 127.0.0.1,
// which is the same *site* to a browser, so SameSite cookies go with its
// requests) that attacks the web UI at TARGET from a browser logged in
// to it: it reads the API, posts changes in every way a page can without
// CORS, opens the event stream and embeds the UI in a frame.
const evilPage = `<!doctype html><html><body><h1>cute cats</h1>
<iframe id="frame" name="sink"></iframe>
<form id="f" method="POST" action="TARGET/v1/identities" enctype="text/plain" target="sink">
<input name='{"nick":"form","x":"' value='"}'></form>
<script>
window.results = {};
const T = 'TARGET';
(async () => {
  const r = window.results;
  try { const x = await fetch(T + '/v1/status', { credentials: 'include' }); r.read = 'read ' + x.status + ' ' + (await x.text()).slice(0, 200); }
  catch (e) { r.read = 'refused: ' + e; }
  try { const x = await fetch(T + '/v1/identities', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'Content-Type': 'text/plain' }, body: '{"nick":"nocors"}' }); r.post = 'sent ' + x.type; }
  catch (e) { r.post = 'refused: ' + e; }
  try { const x = await fetch(T + '/v1/identities', { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json', 'X-Kith-CSRF': 'guess' }, body: '{"nick":"cors"}' }); r.cors = 'read ' + x.status; }
  catch (e) { r.cors = 'refused: ' + e; }
  await new Promise((ok) => { const es = new EventSource(T + '/v1/events', { withCredentials: true });
    es.onopen = () => { r.events = 'open'; es.close(); ok(); }; es.onerror = () => { r.events = 'refused'; es.close(); ok(); }; });
  await new Promise((ok) => { const i = new Image(); i.onload = () => { r.img = 'loaded'; ok(); }; i.onerror = () => { r.img = 'refused'; ok(); }; i.src = T + '/icon.svg'; });
  document.getElementById('f').submit();
  await new Promise((ok) => setTimeout(ok, 1500));
  document.getElementById('frame').src = T + '/';
  await new Promise((ok) => setTimeout(ok, 1500));
  try { r.frame = document.getElementById('frame').contentDocument ? 'readable' : 'not readable'; } catch (e) { r.frame = 'not readable'; }
  r.done = true;
})();
</script></body></html>`

// TestWebUICrossSite: a browser logged in to the web UI opens another
// site's page (evilPage, on another port of 127.0.0.1); nothing it tries
// reads the API or changes anything. Then, as after a DNS rebinding, the
// browser opens the UI by another name that resolves to 127.0.0.1: the
// server refuses it for its Host header.
func TestWebUICrossSite(t *testing.T) {
	chromiumPath(t)
	home := filepath.Join(t.TempDir(), "alice")
	mustKith(t, "init", "--name", "alice", "--home", home)
	webUp(t, home)
	br := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP kith-rebind.test 127.0.0.1"))
	a := br.tab("alice")
	a.login(webLoginLink(t, home))
	base := a.base

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, strings.ReplaceAll(evilPage, "TARGET", base))
	}))
	defer evil.Close()
	e := br.tab("evil")
	e.do("open the other site's page", chromedp.Navigate(evil.URL))
	e.waitJS("the attacks", `window.results && window.results.done`, 30*time.Second)
	var res map[string]any
	e.eval(`window.results`, &res)
	t.Logf("the other site's attacks: %v", res)
	if !strings.HasPrefix(fmt.Sprint(res["read"]), "refused") || !strings.HasPrefix(fmt.Sprint(res["cors"]), "refused") ||
		res["events"] != "refused" || res["img"] != "refused" || res["frame"] != "not readable" {
		t.Errorf("another site's page reached the web UI: %v", res)
	}
	var ids []json.RawMessage
	json.Unmarshal([]byte(mustKith(t, "identity", "ls", "--json", "--home", home)), &ids)
	if len(ids) != 0 {
		t.Fatalf("another site's page made %d identities", len(ids))
	}
	// The logged-in tab still works: the attacks did not end its session.
	var n int
	a.eval(`fetch('/v1/friends').then((r) => r.status)`, &n)
	if n != http.StatusOK {
		t.Fatalf("the UI's own fetch after the attacks: %d", n)
	}

	// DNS rebinding: the page at another name of 127.0.0.1, same port.
	u, _ := url.Parse(base)
	rb := br.tab("rebinding")
	rb.do("open the UI by another name", chromedp.Navigate("http://kith-rebind.test:"+u.Port()+"/v1/status"))
	if s := rb.text("body"); !strings.Contains(s, "Host header") || strings.Contains(s, "peer_id") {
		t.Fatalf("the UI by another name: %q", s)
	}
	a.checkClean()
}
