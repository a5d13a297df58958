package node

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"kith/node/api"
	"kith/share"
)

// Streaming a file while it downloads (share.StreamReader): GET
// /v1/stream/{root} on the API socket, and, for media players, which cannot
// open a unix socket, the same on a loopback TCP port that the daemon opens
// at the first POST /v1/streams (`kith stream LINK`) or when a logged-in web
// page loads (its CSP names the port for media). A URL on that port
// carries a token (an HMAC of the root under a key made at start), so that
// another local user or a web page cannot read what you download by
// guessing roots, and the Host header must name the loopback address (a
// page cannot reach it through DNS rebinding). What is served is a
// friend's file: see share.ServeStream for the headers that keep a browser
// from running it.

// streamServer is the loopback HTTP server for players.
type streamServer struct {
	key  [32]byte
	ln   net.Listener
	srv  *http.Server
	host string // 127.0.0.1:port
}

// streamsMu guards the stream server of each API server.
var streamsMu sync.Mutex

// streamServers maps an API server to its stream server, made at the first
// POST /v1/streams and closed with the API server's context.
var streamServers = map[*apiServer]*streamServer{}

func (a *apiServer) streamRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/stream/{root}", a.streamSocket)
	mux.HandleFunc("POST /v1/streams", a.addStream)
}

// openStream opens a reader of root: a download (running or done), or a
// file of the node's shares.
func (a *apiServer) openStream(ctx context.Context, root [32]byte) (*share.StreamReader, error) {
	sr, err := a.n.share.manager.OpenStream(ctx, root)
	if err == nil || !errors.Is(err, share.ErrNotStreamable) {
		return sr, err
	}
	sf, ok := a.n.share.index.Lookup(root, share.ScopeLocal)
	if !ok {
		return nil, err
	}
	f, ferr := share.OpenSharedFile(sf)
	if ferr != nil {
		return nil, fmt.Errorf("%w: %w", share.ErrNotStreamable, ferr)
	}
	return share.NewFileStream(ctx, f, sf.Name, sf.Tree.Size), nil
}

func (a *apiServer) streamSocket(w http.ResponseWriter, r *http.Request) {
	root, err := rootParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a.serveStream(w, r, root)
}

func (a *apiServer) serveStream(w http.ResponseWriter, r *http.Request, root [32]byte) {
	sr, err := a.openStream(r.Context(), root)
	if err != nil {
		writeError(w, err)
		return
	}
	defer sr.Close()
	share.ServeStream(w, r, sr)
}

// addStream starts the download of a link if the node has the file neither
// in a download nor in its shares, and returns a URL for a player.
func (a *apiServer) addStream(w http.ResponseWriter, r *http.Request) {
	var req api.StreamRequest
	if !readJSON(w, r, &req) {
		return
	}
	link, err := share.ParseLink(req.Link)
	if err != nil {
		writeError(w, err)
		return
	}
	if link.Folder {
		writeError(w, fmt.Errorf("%w: stream one of its files", share.ErrIsFolder))
		return
	}
	name := link.Name
	info, known := a.n.share.manager.Info(link.Root)
	_, shared := a.n.share.index.Lookup(link.Root, share.ScopeLocal)
	switch {
	case known && info.State != share.StateFailed:
		name = info.Name
	case shared:
	default:
		info, err := a.n.AddDownload(link, "", req.Anonymous)
		if err != nil {
			writeError(w, err)
			return
		}
		name = info.Name
	}
	ss, err := a.streamServer()
	if err != nil {
		writeError(w, err)
		return
	}
	rootHex := hex.EncodeToString(link.Root[:])
	writeJSON(w, http.StatusCreated, api.StreamInfo{
		Root: rootHex, Name: name,
		URL: "http://" + ss.host + "/v1/stream/" + rootHex + "?t=" + ss.token(link.Root),
	})
}

// token is the capability for root's URL.
func (ss *streamServer) token(root [32]byte) string {
	m := hmac.New(sha256.New, ss.key[:])
	m.Write(root[:])
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// streamServer returns the loopback stream server, starting it if needed.
func (a *apiServer) streamServer() (*streamServer, error) {
	streamsMu.Lock()
	defer streamsMu.Unlock()
	if ss := streamServers[a]; ss != nil {
		return ss, nil
	}
	if a.ctx.Err() != nil {
		return nil, ErrStopping
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("opening the stream port: %w", err)
	}
	ss := &streamServer{ln: ln, host: ln.Addr().String()}
	rand.Read(ss.key[:])
	ss.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.playerRequest(ss, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return a.ctx },
	}
	streamServers[a] = ss
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		if err := ss.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.n.log.Warn("stream port stopped", slog.Any("err", err))
		}
	}()
	go func() {
		defer a.wg.Done()
		<-a.ctx.Done()
		ss.srv.Close()
		streamsMu.Lock()
		delete(streamServers, a)
		streamsMu.Unlock()
	}()
	a.n.log.Info("stream port open", slog.String("addr", ss.host))
	return ss, nil
}

// playerRequest serves GET /v1/stream/{root}?t=TOKEN on the loopback port.
func (a *apiServer) playerRequest(ss *streamServer, w http.ResponseWriter, r *http.Request) {
	host, port, _ := net.SplitHostPort(r.Host)
	_, myPort, _ := net.SplitHostPort(ss.host)
	if port != myPort || (host != "127.0.0.1" && host != "localhost") {
		http.Error(w, "wrong host", http.StatusMisdirectedRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/stream/")
	l, err := share.ParseLink(rest)
	if !ok || err != nil || l.Folder {
		http.NotFound(w, r)
		return
	}
	if !hmac.Equal([]byte(r.URL.Query().Get("t")), []byte(ss.token(l.Root))) {
		http.Error(w, "bad token", http.StatusForbidden)
		return
	}
	a.serveStream(w, r, l.Root)
}
