package node

import (
	"maps"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"kith/node/api"
	"kith/share"
)

// newMetrics returns the registry the daemon's /metrics serves: Go's and
// the process's collectors, libp2p's own metrics (registered by the host)
// and kith's, read from the components' counters at each scrape.
func newMetrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// kithCollector turns the counters that kith's components keep (Stats
// methods, the bandwidth counter) into Prometheus metrics when scraped,
// so no component needs to know Prometheus.
type kithCollector struct {
	n  *Node
	bw *metrics.BandwidthCounter
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("kith_"+name, help, labels, nil)
}

var (
	descProtocolBytes   = desc("protocol_bytes_total", "Bytes of streams by protocol and direction.", "protocol", "direction")
	descFriends         = desc("friends", "Friends, by whether they are online.", "state")
	descConnsRefused    = desc("connections_refused_total", "Peers refused at the gate (non-friends) and dials to non-friends.")
	descAddrsRefused    = desc("friend_addrs_refused_total", "Friends' addresses the address policy would not dial.")
	descHandshakes      = desc("inbound_connections_total", "Inbound connections judged before the handshake, by result.", "result")
	descDials           = desc("friend_dials_total", "Dial attempts to friends.")
	descDHTLookups      = desc("dht_lookups_total", "Friends DHT lookups after a failed dial, by result.", "result")
	descRelayBytes      = desc("relay_bytes_total", "Bytes relayed for friends (circuit relay), both directions.")
	descRelayCircuits   = desc("relay_circuits", "Circuits relayed for friends now.")
	descRelayRefused    = desc("relay_refused_total", "Reservations and circuits refused, by kind.", "kind")
	descHolePunches     = desc("hole_punches_total", "Hole punches with friends, by result.", "result")
	descDownloads       = desc("downloads", "Downloads by state.", "state")
	descGroups          = desc("download_groups_total", "Groups of downloads verified and stored, or rejected (failed verification, or from a source caught lying).", "result")
	descSourcesDropped  = desc("download_sources_dropped_total", "Sources downloads dropped (stalled, errors, lying).")
	descDownloadsEnded  = desc("downloads_finished_total", "Downloads that ended, by result.", "result")
	descScans           = desc("share_scans_total", "Share scans finished.")
	descScanHashed      = desc("share_scan_hashed_files_total", "Files hashed by share scans.")
	descScanBytes       = desc("share_scan_hashed_bytes_total", "Bytes hashed by share scans.")
	descChatMessages    = desc("chat_messages_total", "Private and distant chat messages: written by the user and queued, delivered (acked), received.", "event")
	descShareRequests   = desc("share_requests_total", "Share requests answered, by kind.", "kind")
	descShareDropped    = desc("share_requests_dropped_total", "Share requests slowed or refused, by reason.", "reason")
	descRouterSearches  = desc("router_searches_total", "Searches taken from friends (received), copies sent on (forwarded), searches answered from this node's anonymous shares (answered).", "event")
	descRouterTunnels   = desc("router_tunnel_requests_total", "Tunnel requests taken from friends (received) and sent on (forwarded).", "event")
	descTunnels         = desc("tunnels_total", "Tunnels spliced for friends (relayed) and ending here (served).", "role")
	descRouterDropped   = desc("router_dropped_total", "Router messages dropped, by reason.", "reason")
	descFriendsPaused   = desc("router_friends_cut_off_total", "Friends whose router link was cut for invalid messages.")
	descChatStreams     = desc("chat_streams", "Chat streams and distant sessions served now.")
	descChatRefused     = desc("chat_refused_total", "Chat streams, sessions and messages refused, by reason.", "reason")
	descChatStored      = desc("chat_stored_bytes", "Bytes of stored chat history.")
	descLobbyDropped    = desc("lobby_dropped_total", "Lobby messages and frames dropped, by reason.", "reason")
	descLobbyRelayed    = desc("lobby_messages_total", "Lobby messages that crossed friend links, by direction.", "direction")
	descLobbyLinksReset = desc("lobby_links_reset_total", "Lobby links reset for a bad frame.")
	descLobbySynced     = desc("lobby_synced_total", "Lobby messages taken from sync replies (what live relay did not bring).")
	descClockBehind     = desc("clock_behind_friends_seconds", "How far this node's clock is behind the median of its friends' (negative: ahead), from lobby links.")
)

func (c kithCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c kithCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := c.n
	if c.bw != nil {
		for _, p := range slices.Sorted(maps.Keys(c.bw.GetBandwidthByProtocol())) {
			st := c.bw.GetBandwidthForProtocol(p)
			counter(descProtocolBytes, float64(st.TotalIn), string(p), "in")
			counter(descProtocolBytes, float64(st.TotalOut), string(p), "out")
		}
	}
	online, total := 0, 0
	for _, f := range n.friends.List() {
		total++
		if f.Online {
			online++
		}
	}
	gauge(descFriends, float64(online), "online")
	gauge(descFriends, float64(total-online), "offline")

	g := n.gater.Stats()
	counter(descConnsRefused, float64(g.Refused))
	counter(descAddrsRefused, float64(g.AddrsRefused))
	counter(descHandshakes, float64(g.Admission.AdmittedKnown), "known_friend_endpoint")
	counter(descHandshakes, float64(g.Admission.AdmittedRelayed), "relayed")
	counter(descHandshakes, float64(g.Admission.Admitted), "admitted")
	counter(descHandshakes, float64(g.Admission.Refused), "refused")
	if n.connector != nil {
		cs := n.connector.Stats()
		counter(descDials, float64(cs.Dials))
		counter(descDHTLookups, float64(cs.DHTFoundNew), "found_new")
		counter(descDHTLookups, float64(cs.DHTLookups-min(cs.DHTLookups, cs.DHTFoundNew)), "other")
	}
	if r := n.reach; r != nil {
		if r.relay != nil {
			rs := r.relay.Stats()
			counter(descRelayBytes, float64(rs.Bytes))
			gauge(descRelayCircuits, float64(rs.Circuits))
			counter(descRelayRefused, float64(rs.ReservationsRefused), "reservation")
			counter(descRelayRefused, float64(rs.CircuitsRefused), "circuit")
		}
		if r.trav != nil {
			hp := r.trav.HolePunches()
			counter(descHolePunches, float64(hp.Succeeded), "succeeded")
			counter(descHolePunches, float64(hp.Failed), "failed")
		}
	}
	if s := n.share; s != nil {
		states := map[share.DownloadState]int{}
		for _, d := range s.manager.List() {
			states[d.State]++
		}
		for _, st := range slices.Sorted(maps.Keys(states)) {
			gauge(descDownloads, float64(states[st]), string(st))
		}
		verified, rejected, dropped, done, failed := n.dlCounts.totals()
		counter(descGroups, float64(verified), "verified")
		counter(descGroups, float64(rejected), "rejected")
		counter(descSourcesDropped, float64(dropped))
		counter(descDownloadsEnded, float64(done), "done")
		counter(descDownloadsEnded, float64(failed), "failed")
		sc := s.index.ScanTotals()
		counter(descScans, float64(sc.Scans))
		counter(descScanHashed, float64(sc.Hashed))
		counter(descScanBytes, float64(sc.BytesHashed))
		ss := s.server.Stats()
		counter(descShareRequests, float64(ss.Have), "have")
		counter(descShareRequests, float64(ss.Ranges), "range")
		counter(descShareRequests, float64(ss.Browses), "browse")
		counter(descShareDropped, float64(ss.Throttled), "throttled")
		counter(descShareDropped, float64(ss.Busy), "busy")
		counter(descShareDropped, float64(ss.PeerFaults), "peer_fault")
	}
	if t := n.tun.Load(); t != nil && t.router != nil {
		rs := t.router.Stats()
		counter(descRouterSearches, float64(rs.SearchesReceived), "received")
		counter(descRouterSearches, float64(rs.SearchesForwarded), "forwarded")
		counter(descRouterSearches, float64(rs.SearchesAnswered), "answered")
		counter(descRouterTunnels, float64(rs.TunnelsRequested), "received")
		counter(descRouterTunnels, float64(rs.TunnelsForwarded), "forwarded")
		counter(descTunnels, float64(rs.TunnelsRelayed), "relayed")
		counter(descTunnels, float64(rs.TunnelsServed), "served")
		counter(descRouterDropped, float64(rs.SearchesDropped), "search")
		counter(descRouterDropped, float64(rs.TunnelsDropped), "tunnel_request")
		counter(descRouterDropped, float64(rs.MessagesDropped), "queue_full")
		counter(descRouterDropped, float64(rs.ResultsDropped), "result")
		counter(descFriendsPaused, float64(rs.FriendsDisconnected))
	}
	if n.chat != nil {
		cs := n.chat.Stats()
		gauge(descChatStreams, float64(cs.Streams))
		counter(descChatMessages, float64(cs.Queued), "queued")
		counter(descChatMessages, float64(cs.Delivered), "delivered")
		counter(descChatMessages, float64(cs.Received), "received")
		counter(descChatRefused, float64(cs.StreamsRefused), "stream_cap")
		counter(descChatRefused, float64(cs.StreamsBroken), "protocol")
		counter(descChatRefused, float64(cs.RefusedStorage), "storage_full")
		counter(descChatRefused, float64(cs.RefusedRequests), "request_quota")
		counter(descChatRefused, float64(cs.SessionsLimited), "session_rate")
		counter(descChatRefused, float64(cs.TypingDropped), "typing_rate")
		gauge(descChatStored, float64(cs.StoredBytes))
	}
	if n.lobbies != nil {
		ls := n.lobbies.l.Stats()
		for _, reason := range slices.Sorted(maps.Keys(ls.Dropped)) {
			counter(descLobbyDropped, float64(ls.Dropped[reason]), reason)
		}
		var in, out uint64
		for _, l := range ls.Links {
			in += l.In
			out += l.Out
		}
		counter(descLobbyRelayed, float64(in), "in")
		counter(descLobbyRelayed, float64(out), "out")
		counter(descLobbyLinksReset, float64(ls.Disconnected))
		counter(descLobbySynced, float64(ls.Synced))
		_, behind := n.lobbies.l.ClockSkewed()
		gauge(descClockBehind, behind.Seconds())
	}
}

// downloadCounters sums what downloads did from their events, so that
// the counters only grow although each download's own figures start
// again when it is resumed and vanish when it is removed.
type downloadCounters struct {
	mu sync.Mutex
	// last is each running download's figures at its latest event.
	last                                      map[string]downloadFigures
	verified, rejected, dropped, done, failed uint64
}

type downloadFigures struct{ fetched, bad int64 }

// observe takes one download event.
func (c *downloadCounters) observe(typ string, info share.DownloadInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]downloadFigures{}
	}
	prev := c.last[info.Root]
	now := downloadFigures{fetched: info.FetchedGroups, bad: info.BadRanges}
	// A run that started again counts from zero: what it counts now is new.
	if now.fetched < prev.fetched {
		prev.fetched = 0
	}
	if now.bad < prev.bad {
		prev.bad = 0
	}
	c.verified += uint64(now.fetched - prev.fetched)
	c.rejected += uint64(now.bad - prev.bad)
	switch typ {
	case string(api.EventDownloadSourceDropped):
		c.dropped++
	case string(api.EventDownloadDone):
		c.done++
	case string(api.EventDownloadFailed):
		c.failed++
	}
	if info.State == share.StateDone || info.State == share.StateFailed {
		delete(c.last, info.Root)
	} else {
		c.last[info.Root] = now
	}
}

func (c *downloadCounters) totals() (verified, rejected, dropped, done, failed uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified, c.rejected, c.dropped, c.done, c.failed
}
