package node

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kith/node/api"
	"kith/share"
	"kith/tunnels"
)

// scrape reads the daemon's /metrics through its API socket into a map of
// "name{labels}" to value.
func scrape(t *testing.T, home string) map[string]float64 {
	t.Helper()
	resp, err := api.NewClient(home).Stream(t.Context(), "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// family sums every series of a metric whose labels contain all of want.
func family(m map[string]float64, name string, want ...string) (sum float64, found bool) {
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// /metrics on the API socket has libp2p's own families and kith's, and
// they move with a download.
func TestMetricsMoveWithADownload(t *testing.T) {
	d, dhome := testNode(t, "downloader")
	s, shome := testNode(t, "source")
	befriend(t, d, s)
	src := filepath.Join(t.TempDir(), "orig", "song.ogg")
	tree := writeRandomFile(t, src, 4<<20, 7)
	dir := filepath.Join(t.TempDir(), "share")
	linkInto(t, src, dir)
	shareDir(t, s, dir, share.ShareFlags{Browsable: true})
	waitFor(t, 10*time.Second, "friend online", func() bool { return isOnline(d, s) && isOnline(s, d) })
	before := scrape(t, dhome)
	if _, err := d.Downloads().Add(share.Link{Root: tree.Root, Name: "song.ogg", Size: 4 << 20}, ""); err != nil {
		t.Fatal(err)
	}
	if info := waitDownload(t, d, tree.Root, time.Minute); info.State != share.StateDone {
		t.Fatalf("download: %+v", info)
	}
	// Byte meters are folded into their totals about once a second.
	var after map[string]float64
	waitFor(t, 5*time.Second, "share bytes counted", func() bool {
		after = scrape(t, dhome)
		in, _ := family(after, "kith_protocol_bytes_total", `protocol="/kith/share/1"`, `direction="in"`)
		return in >= 4<<20
	})
	for _, name := range []string{
		"libp2p_rcmgr_streams", "libp2p_identify_identify_pushes_triggered_total",
		"go_goroutines", "process_resident_memory_bytes",
		"kith_friends", "kith_inbound_connections_total", "kith_router_dropped_total",
		"kith_chat_streams", "kith_lobby_messages_total", "kith_lobby_synced_total", "kith_clock_behind_friends_seconds",
	} {
		if _, ok := family(after, name); !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	in0, _ := family(before, "kith_protocol_bytes_total", `protocol="/kith/share/1"`, `direction="in"`)
	in1, ok := family(after, "kith_protocol_bytes_total", `protocol="/kith/share/1"`, `direction="in"`)
	if !ok || in1-in0 < 4<<20 {
		t.Errorf("share bytes in moved by %.0f during a 4 MiB download", in1-in0)
	}
	// kith status shows the rate from the same meters (sampled each
	// second, so it shows once the next sample is taken).
	waitFor(t, 5*time.Second, "a download rate in the status", func() bool { return d.Status().DownloadRate > 0 })
	if done, _ := family(after, "kith_downloads", `state="done"`); done != 1 {
		t.Errorf("kith_downloads{state=done} = %v", done)
	}
	// The 4 MiB are 16 groups, each verified once, none rejected.
	if g, _ := family(after, "kith_download_groups_total", `result="verified"`); g != 16 {
		t.Errorf("kith_download_groups_total{result=verified} = %v, want 16", g)
	}
	if g, ok := family(after, "kith_download_groups_total", `result="rejected"`); !ok || g != 0 {
		t.Errorf("kith_download_groups_total{result=rejected} = %v (present %v), want 0", g, ok)
	}
	if n, _ := family(after, "kith_downloads_finished_total", `result="done"`); n != 1 {
		t.Errorf("kith_downloads_finished_total{result=done} = %v", n)
	}
	if _, ok := family(after, "kith_download_sources_dropped_total"); !ok {
		t.Error("no kith_download_sources_dropped_total")
	}
	srcM := scrape(t, shome)
	if n, _ := family(srcM, "kith_share_scans_total"); n < 1 {
		t.Errorf("the source's kith_share_scans_total = %v after sharing a folder", n)
	}
	if n, _ := family(srcM, "kith_share_scan_hashed_bytes_total"); n < 4<<20 {
		t.Errorf("the source's kith_share_scan_hashed_bytes_total = %v, want at least the 4 MiB file", n)
	}

	// A chat message: queued and delivered on one side, received on the other.
	if _, err := d.Chat().Send(s.ID(), "hello"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the message delivered and counted", func() bool {
		m := scrape(t, dhome)
		delivered, _ := family(m, "kith_chat_messages_total", `event="delivered"`)
		return delivered == 1
	})
	m := scrape(t, dhome)
	if q, _ := family(m, "kith_chat_messages_total", `event="queued"`); q != 1 {
		t.Errorf("kith_chat_messages_total{event=queued} = %v", q)
	}
	if r, _ := family(scrape(t, shome), "kith_chat_messages_total", `event="received"`); r != 1 {
		t.Errorf("the source's kith_chat_messages_total{event=received} = %v", r)
	}
	if online, _ := family(after, "kith_friends", `state="online"`); online != 1 {
		t.Errorf("kith_friends{state=online} = %v", online)
	}
}

// gathered reads n's /metrics registry in-process (nodes without an API
// socket) into the map scrape makes.
func gathered(t *testing.T, n *Node) map[string]float64 {
	t.Helper()
	mfs, err := n.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestMetricsMoveWithRouterAndLobby: on a chain a-b-c, a search, a
// tunnel relayed by b and a lobby conversation move the router's,
// tunnels' and lobbies' families on the nodes that did the work.
func TestMetricsMoveWithRouterAndLobby(t *testing.T) {
	nodes := tunnelNet(t, []string{"a", "b", "c"}, [][2]int{{0, 1}, {1, 2}}, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	dir := filepath.Join(t.TempDir(), "anon")
	tree := writeRandomFile(t, filepath.Join(dir, "tune.flac"), 1<<20, 9)
	shareDir(t, c, dir, share.ShareFlags{Anonymous: true})
	value := func(n *Node, name string, labels ...string) float64 {
		v, _ := family(gathered(t, n), name, labels...)
		return v
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	ch, err := a.Search(ctx, tunnels.Query{Keywords: "tune"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for range ch {
		cancel()
	}
	cancel()
	if v := value(b, "kith_router_searches_total", `event="received"`); v < 1 {
		t.Errorf("b received %v searches", v)
	}
	if v := value(b, "kith_router_searches_total", `event="forwarded"`); v < 1 {
		t.Errorf("b forwarded %v searches", v)
	}
	if v := value(c, "kith_router_searches_total", `event="answered"`); v < 1 {
		t.Errorf("c answered %v searches", v)
	}

	ts, err := a.Router().OpenTunnels(t.Context(), tree.Root, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ts[0].Close()
	if v := value(b, "kith_router_tunnel_requests_total", `event="forwarded"`); v < 1 {
		t.Errorf("b forwarded %v tunnel requests", v)
	}
	waitFor(t, 10*time.Second, "b relaying the tunnel and c serving it", func() bool {
		return value(b, "kith_tunnels_total", `role="relayed"`) >= 1 && value(c, "kith_tunnels_total", `role="served"`) >= 1
	})
	if st := b.Status(); st.TunnelsRelayed < 1 {
		t.Errorf("b's status says %d tunnels relayed", st.TunnelsRelayed)
	}
	if v := value(a, "kith_tunnels_total", `role="relayed"`); v != 0 {
		t.Errorf("the origin counts %v relayed tunnels", v)
	}

	for _, n := range nodes {
		if _, err := n.Chat().Identities().New(n.Name()); err != nil {
			t.Fatal(err)
		}
	}
	li, err := a.Lobbies().Create("hall", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b sees the lobby", func() bool { return lobbyAnnounced(b, li.ID) })
	if _, err := b.Lobbies().Join(li.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "c sees the lobby", func() bool { return lobbyAnnounced(c, li.ID) })
	if _, err := c.Lobbies().Join(li.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b subscribed to c", func() bool { return b.Lobbies().Subscribed(c.ID(), li.ID) })
	before := value(b, "kith_lobby_messages_total", `direction="out"`)
	if _, err := c.Lobbies().Send(li.ID, "hello hall"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b relaying c's message to a", func() bool {
		return lobbyHas(a, li.ID, "hello hall") && value(b, "kith_lobby_messages_total", `direction="out"`) > before
	})
}
