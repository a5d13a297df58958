package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"kith/f2f"
	"kith/internal/store"
	"kith/internal/testkit"
	"kith/node/api"
)

func TestMain(m *testing.M) {
	// go-flow-metrics (the bandwidth counter behind /metrics) keeps one
	// package-wide sweeper, which outlives the nodes that used it.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).runActive"))
}

// testNode initialises a home in a temp folder and starts its node on
// loopback TCP and QUIC with the API on.
func testNode(t *testing.T, name string) (*Node, string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), name)
	if _, err := Init(home, name); err != nil {
		t.Fatal(err)
	}
	return startHome(t, home), home
}

func testConfig(home string) Config {
	cfg := DefaultConfig(home)
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.MDNS = false
	cfg.RedialMin = 100 * time.Millisecond
	cfg.RedialMax = time.Second
	return cfg
}

func startHome(t *testing.T, home string) *Node {
	t.Helper()
	n, err := Start(testConfig(home))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func befriend(t testing.TB, a, b *Node) {
	t.Helper()
	for _, p := range [][2]*Node{{a, b}, {b, a}} {
		inv, err := p[1].Invite()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p[0].AddFriend(inv, p[1].Name()); err != nil {
			t.Fatal(err)
		}
	}
}

func isOnline(n *Node, other *Node) bool {
	f, ok := n.Friends().Get(other.ID())
	return ok && f.Online
}

// waitFor is testkit.WaitFor, the one copy of the fixture.
var waitFor = testkit.WaitFor

func TestInitRefusesExistingIdentity(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	if _, err := Init(home, "a"); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(home, KeyFile))
	if _, err := Init(home, "b"); !errors.Is(err, f2f.ErrIdentityExists) {
		t.Fatalf("second init: %v, want ErrIdentityExists", err)
	}
	key2, _ := os.ReadFile(filepath.Join(home, KeyFile))
	if !bytes.Equal(key, key2) {
		t.Fatal("identity.key changed")
	}
	if fi, _ := os.Stat(filepath.Join(home, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity.key mode %v", fi.Mode().Perm())
	}
}

func TestRestartKeepsFriendsAndPresence(t *testing.T) {
	a, homeA := testNode(t, "alice")
	b, _ := testNode(t, "bob")
	befriend(t, a, b)
	waitFor(t, 10*time.Second, "friends online", func() bool { return isOnline(a, b) && isOnline(b, a) })
	keyBefore, _ := os.ReadFile(filepath.Join(homeA, KeyFile))
	idBefore := a.ID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(homeA, SocketFile)); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
	waitFor(t, 5*time.Second, "bob to see alice offline", func() bool { return !isOnline(b, a) })

	a2 := startHome(t, homeA)
	if a2.ID() != idBefore {
		t.Fatal("peer ID changed across restart")
	}
	keyAfter, _ := os.ReadFile(filepath.Join(homeA, KeyFile))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("identity.key changed across restart")
	}
	f, ok := a2.Friends().Get(b.ID())
	if !ok || f.Name != "bob" || f.LastSeen.IsZero() || len(f.Addrs) == 0 {
		t.Fatalf("friend record after restart: %+v", f)
	}
	waitFor(t, 10*time.Second, "reconnect after restart", func() bool { return isOnline(a2, b) && isOnline(b, a2) })
}

func TestUnknownSchemaRefused(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	if _, err := Init(home, "a"); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(home, DBFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetSchemaVersion(db, 99); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Start(testConfig(home))
	if !errors.Is(err, store.ErrUnknownSchema) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("start on schema 99: %v", err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	_, home := testNode(t, "a")
	_, err := Start(testConfig(home))
	if !errors.Is(err, ErrDaemonRunning) {
		t.Fatalf("second start: %v, want ErrDaemonRunning", err)
	}
}

func TestStaleSocketDoesNotBlockStart(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	if _, err := Init(home, "a"); err != nil {
		t.Fatal(err)
	}
	// A crashed daemon leaves its socket file behind.
	ln, err := net.Listen("unix", filepath.Join(home, SocketFile))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	n := startHome(t, home)
	if _, err := api.NewClient(home).Status(context.Background()); err != nil {
		t.Fatalf("status after stale socket: %v", err)
	}
	n.Close()
}

func TestClientWithoutDaemon(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	if _, err := Init(home, "a"); err != nil {
		t.Fatal(err)
	}
	_, err := api.NewClient(home).Status(context.Background())
	if !errors.Is(err, api.ErrNoDaemon) || !strings.Contains(err.Error(), "kith up") {
		t.Fatalf("no daemon: %v", err)
	}
}

// rawRequest sends a request to the API socket and returns status and body.
func rawRequest(t *testing.T, home, method, path, body string) (int, api.ErrorBody) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(home, SocketFile))
	}}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, "http://kith"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" || eb.Code == "" {
			t.Fatalf("%s %s: error answer is not a JSON error: %q", method, path, b)
		}
	}
	return resp.StatusCode, eb
}

func TestAPIMalformedRequests(t *testing.T) {
	n, home := testNode(t, "a")
	own, _ := n.Invite()
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"not json", "POST", "/v1/friends", "{invite:", 400, "bad_request"},
		{"unknown field", "POST", "/v1/friends", `{"invite":"x","bogus":1}`, 400, "bad_request"},
		{"trailing data", "POST", "/v1/friends", `{"invite":"x"} {}`, 400, "bad_request"},
		{"oversize body", "POST", "/v1/friends", `{"invite":"` + strings.Repeat("a", maxRequestBody) + `"}`, 400, "bad_request"},
		{"empty invite", "POST", "/v1/friends", `{"invite":""}`, 400, "invite_empty"},
		{"garbled invite", "POST", "/v1/friends", `{"invite":"hello"}`, 400, "invite_garbled"},
		{"own invite", "POST", "/v1/friends", `{"invite":"` + own + `"}`, 400, "invite_own"},
		{"unknown friend", "DELETE", "/v1/friends/nobody", "", 404, "no_such_friend"},
		{"unknown path", "GET", "/v1/nothing", "", 404, "not_found"},
		{"wrong method", "PUT", "/v1/status", "", 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, eb := rawRequest(t, home, c.method, c.path, c.body)
			if status != c.status || string(eb.Code) != c.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, eb.Code, eb.Error, c.status, c.code)
			}
		})
	}
	// The client turns codes back into sentinel errors.
	_, err := api.NewClient(home).AddFriend(context.Background(), own[:len(own)-10], "")
	if !errors.Is(err, api.ErrInviteTruncated) {
		t.Fatalf("client error: %v, want ErrInviteTruncated", err)
	}
}

func TestAPIFriendsAndEvents(t *testing.T) {
	a, homeA := testNode(t, "alice")
	b, homeB := testNode(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ca, cb := api.NewClient(homeA), api.NewClient(homeB)

	online := make(chan api.Event, 1)
	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	evDone := make(chan error, 1)
	go func() {
		evDone <- ca.Events(evCtx, func(ev api.Event) error {
			if ev.Type == api.EventFriendOnline {
				select {
				case online <- ev:
				default:
				}
			}
			return nil
		})
	}()
	invA, err := ca.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	invB, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if invA.PeerID != a.ID().String() || len(invA.Addrs) == 0 {
		t.Fatalf("invite info: %+v", invA)
	}
	time.Sleep(100 * time.Millisecond) // let the event stream subscribe
	if _, err := ca.AddFriend(ctx, invB.Invite, "bobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddFriend(ctx, invB.Invite, ""); !errors.Is(err, api.ErrAlreadyFriend) {
		t.Fatalf("duplicate add: %v", err)
	}
	if _, err := cb.AddFriend(ctx, invA.Invite, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-online:
		t.Logf("event: %+v", ev)
	case <-ctx.Done():
		t.Fatal("no friend.online event")
	}
	fs, err := ca.Friends(ctx)
	if err != nil || len(fs) != 1 || fs[0].Name != "bobby" || !fs[0].Online {
		t.Fatalf("friends: %+v, %v", fs, err)
	}
	st, err := ca.Status(ctx)
	if err != nil || st.FriendsOnline != 1 || st.FriendsTotal != 1 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if _, err := ca.RemoveFriend(ctx, "bobby"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bob to see alice offline", func() bool { return !isOnline(b, a) })
	// Closing the node ends the event stream.
	a.Close()
	select {
	case <-evDone:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream did not end when the daemon stopped")
	}
}
