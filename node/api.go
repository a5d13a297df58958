package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kith/chat"
	"kith/f2f"
	"kith/node/api"
	"kith/share"
	"kith/tunnels"
)

// maxRequestBody bounds every API request body.
const maxRequestBody = 512 << 10 // a chat message of chat.MaxTextSize, escaped

// sseHeartbeat is how often an idle event stream gets a comment line, so
// that clients notice a dead daemon.
const sseHeartbeat = 15 * time.Second

// API request errors: those of package api, which the client maps back.
var (
	// ErrBadRequest: the request could not be understood.
	ErrBadRequest = api.ErrBadRequest
	// ErrNotFound: no such API endpoint.
	ErrNotFound = api.ErrNotFound
	// ErrStopping: the daemon stopped while the request ran, which was cut
	// short (what it finished is kept).
	ErrStopping = api.ErrStopping
)

// apiErrors maps the components' sentinel errors to the API's codes (the
// node's own errors are api's sentinels, found by api.CodeOf).
var apiErrors = slices.Concat(coreAPIErrors, chatAPIErrors, lobbyAPIErrors, reachAPIErrors)

// apiErrorCode is the API code an error is answered with.
type apiErrorCode struct {
	err  error
	code api.Code
}

var coreAPIErrors = []apiErrorCode{
	{f2f.ErrInviteEmpty, "invite_empty"},
	{f2f.ErrInviteGarbled, "invite_garbled"},
	{f2f.ErrInviteTruncated, "invite_truncated"},
	{f2f.ErrInviteSignature, "invite_signature"},
	{f2f.ErrInviteVersion, "invite_version"},
	{f2f.ErrInviteTooLarge, "invite_too_large"},
	{f2f.ErrInviteOwn, "invite_own"},
	{f2f.ErrBadName, "bad_name"},
	{f2f.ErrAlreadyFriend, "already_friend"},
	{f2f.ErrNoSuchFriend, "no_such_friend"},
	{f2f.ErrAmbiguousFriend, "ambiguous_friend"},
	{share.ErrLinkTooLong, "link_too_long"},
	{share.ErrBadScheme, "link_bad_scheme"},
	{share.ErrBadRoot, "link_bad_root"},
	{share.ErrBadSize, "link_bad_size"},
	{share.ErrBadName, "link_bad_name"},
	{share.ErrBadLink, "link_malformed"},
	{share.ErrDownloadExists, "download_exists"},
	{share.ErrNoSuchDownload, "no_such_download"},
	{share.ErrNotShared, "not_shared"},
	{share.ErrNoSuchPath, "no_such_path"},
	{share.ErrNestedShare, "nested_share"},
	{share.ErrNotFolder, "not_folder"},
	{share.ErrBadQuery, "bad_query"},
	{share.ErrShareUnreadable, "share_unreadable"},
	{tunnels.ErrInvalidMessage, "bad_search"},
	{tunnels.ErrRouterClosed, "router_closed"},
	{tunnels.ErrNoTunnel, "no_tunnel"},
	{fs.ErrNotExist, "not_exist"},
}

type apiServer struct {
	n       *Node
	path    string
	srv     *http.Server
	closing chan struct{}
	// ctx is every request's base context: close cancels it first, so a
	// long request (indexing a share) stops instead of holding up the exit.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu   sync.Mutex
	ln   net.Listener
	sock os.FileInfo // the socket file ln made, to notice it gone or replaced
}

// socketCheckInterval is how often the daemon looks whether its API socket
// is still where the CLI looks for it (a user or a cleaner may delete it).
const socketCheckInterval = time.Second

// startAPI serves the API on a unix socket at path (mode 0600). A socket
// left by a crashed daemon is removed; one that answers means another
// daemon runs (the database lock normally says so first).
//
// The socket is never reachable with a looser mode, whatever the umask:
// it is made in a fresh 0700 folder beside path, set to 0600 there, and
// only then renamed into place.
func startAPI(n *Node, path string) (*apiServer, error) {
	if _, err := os.Stat(path); err == nil {
		if isUnixSocketAlive(path) {
			return nil, fmt.Errorf("%w: %s answers", ErrDaemonRunning, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	a := &apiServer{n: n, path: path, closing: make(chan struct{})}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.srv = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return a.ctx }}
	a.serve(ln)
	a.wg.Add(1)
	go a.watchSocket()
	return a, nil
}

// serve starts serving on ln, which becomes the current listener.
func (a *apiServer) serve(ln net.Listener) {
	fi, _ := os.Stat(a.path)
	a.mu.Lock()
	old := a.ln
	a.ln, a.sock = ln, fi
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.n.log.Warn("API server stopped", slog.Any("err", err))
		}
	}()
}

// watchSocket makes the socket anew when its file is deleted or replaced,
// so the CLI never finds "no daemon" while one runs.
func (a *apiServer) watchSocket() {
	defer a.wg.Done()
	t := time.NewTicker(socketCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-a.closing:
			return
		case <-t.C:
		}
		fi, err := os.Lstat(a.path)
		a.mu.Lock()
		same := err == nil && a.sock != nil && os.SameFile(fi, a.sock)
		a.mu.Unlock()
		if same {
			continue
		}
		if err == nil { // something else is there now: ours was replaced
			if isUnixSocketAlive(a.path) {
				a.n.log.Warn("another process answers on the API socket; leaving it", slog.String("socket", a.path))
				continue
			}
			os.Remove(a.path)
		}
		ln, err := listenPrivate(a.path)
		if err != nil {
			a.n.log.Warn("API socket gone and cannot be made again", slog.String("socket", a.path), slog.Any("err", err))
			continue
		}
		a.n.log.Warn("API socket was deleted; made it again", slog.String("socket", a.path))
		a.serve(ln)
	}
}

// apiListenHook, if set, runs after the socket is made and before it is
// moved into place (a test looks at the socket's path then).
var apiListenHook func(tmp string)

// listenPrivate listens on a unix socket at path that nobody but this
// user can reach at any moment: see startAPI.
func listenPrivate(path string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".api-")
	if err != nil { // MkdirTemp makes the folder 0700
		return nil, fmt.Errorf("making the API socket: %w", err)
	}
	defer os.Remove(dir)
	tmp := filepath.Join(dir, filepath.Base(path))
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // close() removes path itself
	fail := func(what string, err error) (net.Listener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail("securing", err)
	}
	if apiListenHook != nil {
		apiListenHook(tmp)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail("placing", err)
	}
	return ln, nil
}

func (a *apiServer) close() error {
	var err error
	a.once.Do(func() {
		close(a.closing) // ends event streams, so Shutdown need not wait for them
		a.cancel()       // and every request still running
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = a.srv.Shutdown(ctx)
		a.wg.Wait()
		a.mu.Lock()
		a.ln.Close() // in case watchSocket made one as Shutdown ran
		a.mu.Unlock()
		os.Remove(a.path)
	})
	return err
}

func (a *apiServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("GET /v1/invite", a.invite)
	mux.HandleFunc("GET /v1/friends", a.listFriends)
	mux.HandleFunc("POST /v1/friends", a.addFriend)
	mux.HandleFunc("DELETE /v1/friends/{ref}", a.removeFriend)
	mux.HandleFunc("GET /v1/events", a.eventStream)
	mux.HandleFunc("GET /v1/config", a.listConfig)
	mux.HandleFunc("PUT /v1/config/{key}", a.setConfig)
	a.shareRoutes(mux)
	a.folderRoutes(mux) // api_folders.go, api_stream.go
	a.tunnelRoutes(mux)
	a.chatRoutes(mux)
	a.lobbyRoutes(mux)
	a.reachRoutes(mux)
	a.webRoutes(mux)
	// Profiling, on the socket only its owner can reach: `go tool pprof
	// unix:HOME/api.sock` does not work, so fetch the profile with curl
	// --unix-socket (see README, Operations).
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.n.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: %s %s", ErrNotFound, r.Method, r.URL.Path))
	})
	return mux
}

func (a *apiServer) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Status())
}

func (a *apiServer) invite(w http.ResponseWriter, r *http.Request) {
	text, err := a.n.Invite()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.InviteInfo{Invite: text, PeerID: a.n.ID().String(), Name: a.n.Name(), Addrs: addrStrings(a.n.InviteAddrs())})
}

func (a *apiServer) listFriends(w http.ResponseWriter, r *http.Request) {
	out := []api.FriendInfo{}
	var clocks map[peer.ID]chat.ClockOffset
	if a.n.lobbies != nil {
		clocks = a.n.lobbies.l.Clocks()
	}
	for _, f := range a.n.friends.List() {
		fi := a.n.reach.withPath(friendJSON(f), f)
		if c, ok := clocks[f.ID]; ok {
			ms := c.Offset.Milliseconds()
			fi.ClockOffsetMs = &ms
		}
		out = append(out, fi)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) addFriend(w http.ResponseWriter, r *http.Request) {
	var req api.AddFriendRequest
	if !readJSON(w, r, &req) {
		return
	}
	f, err := a.n.addFriendInvite(r.Context(), req.Invite, req.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (a *apiServer) removeFriend(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.RemoveFriend(r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, friendJSON(f))
}

func (a *apiServer) listConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Settings())
}

func (a *apiServer) setConfig(w http.ResponseWriter, r *http.Request) {
	var req api.SetConfigRequest
	if !readJSON(w, r, &req) {
		return
	}
	st, err := a.n.SetSetting(r.PathValue("key"), req.Value)
	if err != nil {
		writeError(w, err)
		return
	}
	a.n.events.Publish(api.EventConfigChanged, st)
	writeJSON(w, http.StatusOK, st)
}

// eventStream sends node events as server-sent events until the client
// goes away or the daemon stops.
func (a *apiServer) eventStream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("streaming unsupported"))
		return
	}
	// A client that reconnects says which event it saw last, as a
	// browser's EventSource does (Last-Event-ID) or with ?since=ID.
	after, _ := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64)
	if since := r.URL.Query().Get("since"); since != "" {
		var err error
		if after, err = strconv.ParseUint(since, 10, 64); err != nil {
			writeError(w, fmt.Errorf("%w: since must be an event id", ErrBadRequest))
			return
		}
	}
	events, cancel := a.n.events.SubscribeAfter(after)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": kith events\n\n")
	fl.Flush()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.closing:
			return
		case <-beat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			fl.Flush()
		case ev, ok := <-events:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			if ev.ID > 0 {
				fmt.Fprintf(w, "id: %d\n", ev.ID)
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b)
			fl.Flush()
		}
	}
}

func friendJSON(f f2f.Friend) api.FriendInfo {
	return api.FriendInfo{
		PeerID: f.ID.String(), Name: f.Name, Online: f.Online,
		LastSeen: f.LastSeen, Added: f.Added, Addrs: addrStrings(f.Addrs),
	}
}

// readJSON decodes a bounded request body strictly; on failure it answers
// 400 and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return false
	}
	if dec.More() {
		writeError(w, fmt.Errorf("%w: trailing data after the JSON body", ErrBadRequest))
		return false
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		writeError(w, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// errorCode is the API code err is answered with: that of the first
// component error it wraps, else that of the api sentinel it wraps, else
// api.CodeInternal.
func errorCode(err error) api.Code {
	for _, e := range apiErrors {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	code, _ := api.CodeOf(err)
	return code
}

// writeError answers a failed request with err's message and API code.
func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w; the request was cut short: %v", ErrStopping, err)
	}
	code := errorCode(err)
	writeJSON(w, api.HTTPStatus(code), api.ErrorBody{Error: err.Error(), Code: code})
}
