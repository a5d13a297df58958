package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	"golang.org/x/net/netutil"

	"kith/node/api"
	"kith/share"
)

// The web UI: `kith up` serves a page on a loopback TCP address that is a
// client of the local API, like the CLI. The server adds nothing to the
// API but what a browser needs to use it safely:
//
//   - login: `kith web` asks the API socket (which only the node's user can
//     reach) for a one-time token; the page at /login?token= trades it for
//     an HttpOnly, SameSite=Strict session cookie;
//   - every request needs that session; every state change also needs the
//     session's CSRF token in the X-Kith-CSRF header, which only a page of
//     this origin can read (GET /web/session; there is no CORS);
//   - the Host header must name a loopback address or localhost (a DNS
//     rebinding page sends its own name), and an Origin header, or a
//     Sec-Fetch-Site that is not same-origin, refuses the request;
//   - every answer carries a strict Content-Security-Policy (scripts from
//     the origin only, no inline script, no eval, Trusted Types required:
//     the page cannot assign strings to HTML sinks), nosniff and
//     frame-ancestors 'none'; the page's own document adds media-src of
//     the daemon's stream port (pageCSP), the one other origin it loads
//     anything from: its player plays the URLs of POST /v1/streams.
//
// The API itself is the unix socket's handler, mounted as is (/v1/...,
// /metrics); the socket's own web endpoints (/v1/web/...) and /debug/ are
// not served here. Besides it: the embedded page, the QR code of a text
// (POST /web/qr) and finished downloads as attachments (GET /web/file/ROOT).

//go:embed webui
var webFiles embed.FS

// The web UI's errors are package api's (the client sees their codes).
var (
	// ErrWebOff: the web UI is not running.
	ErrWebOff = api.ErrWebOff
	// ErrBadWebAddr: a web UI address is not a loopback host:port.
	ErrBadWebAddr = api.ErrBadWebAddr
)

// webCSP is the Content-Security-Policy of every answer of the web server.
const webCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// pageCSP is the policy of the page itself (index.html): webCSP and, when
// the daemon's stream port is open, media-src of exactly that origin, so
// that the page's <video> and <audio> elements can play the URLs POST
// /v1/streams returns (a loopback port with a token per file). Nothing else
// is loaded from there: scripts, styles, frames and connections stay
// 'self' or 'none'.
func (w *webServer) pageCSP() string {
	if w.n.api == nil {
		return webCSP
	}
	ss, err := w.n.api.streamServer()
	if err != nil {
		return webCSP
	}
	return webCSP + "; media-src http://" + ss.host
}

// webCSRFHeader carries the session's CSRF token on state changes.
const webCSRFHeader = "X-Kith-CSRF"

type webServer struct {
	n      *Node
	api    http.Handler
	ln     net.Listener
	srv    *http.Server
	port   string
	cookie string // the session cookie's name, per port: cookies ignore ports
	static fs.FS
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	tokens   map[[32]byte]time.Time // login tokens (hashed) and their expiry
	sessions map[[32]byte]*webSession
}

// webSession is a logged-in browser.
type webSession struct {
	csrf     string
	lastUsed time.Time
}

// parseWebAddr checks a web UI address: host:port with a loopback IP or
// localhost as host.
func parseWebAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadWebAddr, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("%w: %q: bad port", ErrBadWebAddr, addr)
	}
	if !strings.EqualFold(host, "localhost") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			return "", fmt.Errorf("%w: %q: the page must not be reachable from other machines", ErrBadWebAddr, addr)
		}
	} else {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// chooseWebAddr picks the web UI's address for a new home: DefaultWebPort
// on 127.0.0.1 if it is free, else a free port.
func chooseWebAddr() string {
	for _, p := range []int{DefaultWebPort, 0} {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			addr := l.Addr().String()
			l.Close()
			return addr
		}
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultWebPort))
}

// startWeb serves the web UI on addr (already checked by parseWebAddr),
// with api as the handler of the API's paths.
func startWeb(n *Node, addr string, api http.Handler) (*webServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: listening on %s: %v; pick another address with `kith up --web 127.0.0.1:PORT` or `kith config set web 127.0.0.1:PORT`",
			ErrWebOff, addr, err)
	}
	static, err := fs.Sub(webFiles, "webui")
	if err != nil {
		ln.Close()
		return nil, err
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	w := &webServer{n: n, api: api, ln: ln, port: port, cookie: "kith_session_" + port, static: static,
		tokens: map[[32]byte]time.Time{}, sessions: map[[32]byte]*webSession{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.srv = &http.Server{
		Handler:           w.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxWebHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return w.ctx },
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := w.srv.Serve(netutil.LimitListener(ln, MaxWebConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("web UI server stopped", slog.Any("err", err))
		}
	}()
	return w, nil
}

// close stops the server: event streams and other long requests end at
// once (their context is cancelled), then the listener and connections.
func (w *webServer) close() error {
	var err error
	w.once.Do(func() {
		w.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = w.srv.Shutdown(ctx)
		w.wg.Wait()
	})
	return err
}

// url is the page's address (without a login token).
func (w *webServer) url() string { return "http://" + w.ln.Addr().String() + "/" }

// newToken returns a random token and its hash.
func newToken() (string, [32]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	return t, sha256.Sum256([]byte(t))
}

// loginLink makes a one-time login token and returns the URL that uses it.
func (w *webServer) loginLink() (string, time.Time) {
	tok, h := newToken()
	exp := time.Now().Add(WebLoginTTL)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expireLocked(time.Now())
	if len(w.tokens) >= MaxWebLoginTokens {
		var oldest [32]byte
		var at time.Time
		for k, e := range w.tokens {
			if at.IsZero() || e.Before(at) {
				oldest, at = k, e
			}
		}
		delete(w.tokens, oldest)
	}
	w.tokens[h] = exp
	return w.url() + "login?token=" + tok, exp
}

// expireLocked forgets expired tokens and idle sessions.
func (w *webServer) expireLocked(now time.Time) {
	for k, e := range w.tokens {
		if now.After(e) {
			delete(w.tokens, k)
		}
	}
	for k, s := range w.sessions {
		if now.Sub(s.lastUsed) > WebSessionIdle {
			delete(w.sessions, k)
		}
	}
}

// useToken consumes a login token and opens a session: it returns the
// session id, or false if the token is unknown, used or expired.
func (w *webServer) useToken(tok string) (string, bool) {
	if tok == "" || len(tok) > 128 {
		return "", false
	}
	h := sha256.Sum256([]byte(tok))
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	exp, ok := w.tokens[h]
	delete(w.tokens, h) // once, whatever happens next
	if !ok || now.After(exp) {
		return "", false
	}
	w.expireLocked(now)
	if len(w.sessions) >= MaxWebSessions {
		var oldest [32]byte
		var at time.Time
		for k, s := range w.sessions {
			if at.IsZero() || s.lastUsed.Before(at) {
				oldest, at = k, s.lastUsed
			}
		}
		delete(w.sessions, oldest)
	}
	id, sh := newToken()
	csrf, _ := newToken()
	w.sessions[sh] = &webSession{csrf: csrf, lastUsed: now}
	return id, true
}

// session returns the request's session, if its cookie names a live one.
func (w *webServer) session(r *http.Request) (*webSession, [32]byte, bool) {
	c, err := r.Cookie(w.cookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, [32]byte{}, false
	}
	h := sha256.Sum256([]byte(c.Value))
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.sessions[h]
	if !ok || now.Sub(s.lastUsed) > WebSessionIdle {
		delete(w.sessions, h)
		return nil, h, false
	}
	s.lastUsed = now
	return s, h, true
}

// hostAllowed reports whether a Host header names this server by a
// loopback address or localhost (and its port, if it has one).
func (w *webServer) hostAllowed(host string) bool {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		return false // browsers always send the port of a non-default one
	}
	if p != w.port {
		return false
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback() && ip.Zone() == ""
}

// refuse answers a refused request: JSON for the API, plain text else.
func refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	refuseCode(w, r, status, msg, "web_refused")
}

// refuseCode is refuse with the JSON answer's code: "web_csrf" tells the
// page that its CSRF token is not this session's (the browser logged in
// again in another tab) and that it should load it again.
func refuseCode(w http.ResponseWriter, r *http.Request, status int, msg, code string) {
	if strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/web/") || r.URL.Path == "/metrics" {
		writeJSON(w, status, api.ErrorBody{Error: msg, Code: api.Code(code)})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, "kith: "+msg+"\n")
}

// handler is the web server's handler: the checks every request passes,
// then login, the page's own endpoints, the API and the static files.
func (w *webServer) handler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Security-Policy", webCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if !w.hostAllowed(r.Host) {
			refuse(rw, r, http.StatusMisdirectedRequest, "refused: the Host header must be this server's loopback address or localhost")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			refuse(rw, r, http.StatusForbidden, "refused: requests from other origins are not served")
			return
		}
		login := r.URL.Path == "/login"
		// A link to the login page may be followed from anywhere; nothing
		// else is served to another site's page (a browser tells which
		// site asks; old ones do not, and the cookie and CSRF checks hold
		// for them).
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" && !login {
			refuse(rw, r, http.StatusForbidden, "refused: requests from other sites are not served")
			return
		}
		if login {
			w.login(rw, r)
			return
		}
		s, key, ok := w.session(r)
		if !ok {
			refuse(rw, r, http.StatusUnauthorized, "not logged in: run `kith web` and open the link it prints")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			refuse(rw, r, http.StatusMethodNotAllowed, "no cross-origin requests")
			return
		default:
			got := r.Header.Get(webCSRFHeader)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				refuseCode(rw, r, http.StatusForbidden, "refused: a change needs the page's CSRF token", "web_csrf")
				return
			}
		}
		p := r.URL.Path
		switch {
		case p == "/web/session" && r.Method == http.MethodGet:
			writeJSON(rw, http.StatusOK, map[string]string{"csrf": s.csrf})
		case p == "/web/logout" && r.Method == http.MethodPost:
			w.mu.Lock()
			delete(w.sessions, key)
			w.mu.Unlock()
			http.SetCookie(rw, &http.Cookie{Name: w.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
			writeJSON(rw, http.StatusOK, struct{}{})
		case p == "/web/qr" && r.Method == http.MethodPost:
			w.qr(rw, r)
		case strings.HasPrefix(p, "/web/file/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			w.file(rw, r, strings.TrimPrefix(p, "/web/file/"))
		case p == "/v1/web" || strings.HasPrefix(p, "/v1/web/") || strings.HasPrefix(p, "/debug/"):
			refuse(rw, r, http.StatusNotFound, "not served to the browser")
		case strings.HasPrefix(p, "/v1/") || p == "/metrics":
			w.api.ServeHTTP(rw, r)
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			w.serveStatic(rw, r)
		default:
			refuse(rw, r, http.StatusNotFound, "no such page")
		}
	})
}

// loginPage is the answer to a good login link. It moves on to the page by
// a meta refresh from this origin, so that the Strict cookie it sets goes
// with the next request even when the link was opened from another site
// (after a redirect it would not).
const loginPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/">
<title>kith: logged in</title></head>
<body><p>Logged in. <a href="/">Open kith</a>.</p></body></html>
`

func (w *webServer) login(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		refuse(rw, r, http.StatusMethodNotAllowed, "the login link is opened, not posted")
		return
	}
	id, ok := w.useToken(r.URL.Query().Get("token"))
	if !ok {
		refuse(rw, r, http.StatusForbidden, "this login link was used already or has expired: run `kith web` for a new one")
		return
	}
	http.SetCookie(rw, &http.Cookie{Name: w.cookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(rw, loginPage)
}

// webTypes are the content types of the page's files.
var webTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

func (w *webServer) serveStatic(rw http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	typ, ok := webTypes[path.Ext(name)]
	if !ok || !fs.ValidPath(name) {
		refuse(rw, r, http.StatusNotFound, "no such page")
		return
	}
	b, err := fs.ReadFile(w.static, name)
	if err != nil {
		refuse(rw, r, http.StatusNotFound, "no such page")
		return
	}
	if typ == webTypes[".html"] {
		// The document: its policy is the one the page runs under. The
		// stream port opens here (once per API server), so that its
		// origin is known before the page plays anything.
		rw.Header().Set("Content-Security-Policy", w.pageCSP())
	}
	rw.Header().Set("Content-Type", typ)
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Write(b)
}

// qrRequest is the body of POST /web/qr.
type qrRequest struct {
	Text string `json:"text"`
}

// qr answers a PNG of the QR code of a text (an invite): medium error
// correction, or low for a text too long for it.
func (w *webServer) qr(rw http.ResponseWriter, r *http.Request) {
	var req qrRequest
	if !readJSON(rw, r, &req) {
		return
	}
	if req.Text == "" || len(req.Text) > maxQRText {
		writeError(rw, fmt.Errorf("%w: a QR code of 1 to %d bytes", ErrBadRequest, maxQRText))
		return
	}
	png, err := qrcode.Encode(req.Text, qrcode.Medium, -4)
	if err != nil {
		png, err = qrcode.Encode(req.Text, qrcode.Low, -4)
	}
	if err != nil {
		writeError(rw, fmt.Errorf("%w: too long for a QR code (%v)", ErrBadRequest, err))
		return
	}
	rw.Header().Set("Content-Type", "image/png")
	rw.Write(png)
}

// file serves a finished download as an attachment: only a file in the
// downloads folder, opened beneath it (no symlink leads out), never shown
// by the browser itself (its type is not trusted: nosniff, octet-stream).
func (w *webServer) file(rw http.ResponseWriter, r *http.Request, rootHex string) {
	root, err := hex.DecodeString(rootHex)
	if err != nil || len(root) != 32 {
		writeError(rw, fmt.Errorf("%w: want a file's root in hex", ErrBadRequest))
		return
	}
	info, ok := w.n.share.manager.Info([32]byte(root))
	if !ok || info.State != share.StateDone || info.Path == "" {
		writeError(rw, fmt.Errorf("%w: no finished download %s", share.ErrNoSuchDownload, rootHex))
		return
	}
	dir := w.n.cfg.DownloadDir
	rel, ok := relBelow(dir, info.Path)
	if !ok {
		writeError(rw, fmt.Errorf("%w: %s is not in the downloads folder; open it there", ErrBadRequest, info.Path))
		return
	}
	fsRoot, err := os.OpenRoot(dir)
	if err != nil {
		writeError(rw, fmt.Errorf("opening the downloads folder: %w", err))
		return
	}
	defer fsRoot.Close()
	f, err := fsRoot.Open(rel)
	if err != nil {
		writeError(rw, fmt.Errorf("%w: opening the download: %v", share.ErrNoSuchDownload, err))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		writeError(rw, fmt.Errorf("%w: the download is not a regular file", share.ErrNoSuchDownload))
		return
	}
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": filepath.Base(rel)})
	if disp == "" {
		disp = "attachment"
	}
	rw.Header().Set("Content-Disposition", disp)
	rw.Header().Set("Content-Type", "application/octet-stream")
	rw.Header().Set("Cache-Control", "no-store")
	http.ServeContent(rw, r, "", st.ModTime(), f)
}

// relBelow returns p relative to dir if it lies beneath it (dir taken as
// given and with its symlinks resolved).
func relBelow(dir, p string) (string, bool) {
	for _, d := range []string{dir, evalOr(dir)} {
		rel, err := filepath.Rel(d, p)
		if err == nil && filepath.IsLocal(rel) {
			return rel, true
		}
	}
	return "", false
}

func evalOr(p string) string {
	if e, err := filepath.EvalSymlinks(p); err == nil {
		return e
	}
	return p
}
