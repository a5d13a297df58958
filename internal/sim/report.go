package sim

import (
	"cmp"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"kith/tunnels"
)

// Report is what one run measured. Fractions are in 0..1; times in
// milliseconds unless the name says otherwise.
type Report struct {
	Config  ReportConfig  `json:"config"`
	Timing  Timing        `json:"timing"`
	Search  SearchReport  `json:"search"`
	Tunnels TunnelReport  `json:"tunnels"`
	Privacy PrivacyReport `json:"privacy"`
	Cost    CostReport    `json:"cost"`
	// Lobby is the lobby phase; nil when it was turned off.
	Lobby *LobbyReport `json:"lobby"`
	// FriendsDisconnected counts friends cut off by a router for an
	// invalid message: 0 in a healthy run.
	FriendsDisconnected uint64 `json:"friends_disconnected"`
	// Undecoded counts tapped control writes that did not decode as one
	// message: 0 unless the router's writer changed.
	Undecoded int64 `json:"undecoded"`

	// SearchRows and TunnelRows are the per-search and per-tunnel data
	// behind the figures, for CSV and charts.
	SearchRows []SearchRow `json:"-"`
	TunnelRows []TunnelRow `json:"-"`
}

// ReportConfig records the run's settings and the graph it got.
type ReportConfig struct {
	Nodes       int     `json:"nodes"`
	Degree      int     `json:"degree"`
	Graph       string  `json:"graph"`
	Rewire      float64 `json:"rewire"`
	LatencyMs   float64 `json:"latency_ms"`
	Bandwidth   float64 `json:"bandwidth_bytes_per_s"`
	Seed        uint64  `json:"seed"`
	Files       int     `json:"files"`
	Searches    int     `json:"searches"`
	TargetShare float64 `json:"target_share"`
	SearchRate  float64 `json:"search_rate_per_s"`
	// SearchEvery is the load of the traffic figures: one search per node
	// per this long.
	SearchEvery  time.Duration `json:"search_every_ns"`
	Tunnels      int           `json:"tunnels"`
	Edges        int           `json:"edges"`
	MeanDegree   float64       `json:"mean_degree"`
	MaxDegree    int           `json:"max_degree"`
	MeanDistance float64       `json:"mean_distance"`
}

// Timing is when each phase ended, in seconds from the start of the run.
type Timing struct {
	ConnectSeconds float64 `json:"connect_s"`
	LinksUpSeconds float64 `json:"links_up_s"`
	SearchSeconds  float64 `json:"search_phase_s"`
	TunnelSeconds  float64 `json:"tunnel_setup_total_s"`
	// ProbeSeconds is the length of the probing phase.
	ProbeSeconds float64 `json:"probe_phase_s"`
	// LobbySeconds is the length of the lobby phase: services up, joins
	// and messages.
	LobbySeconds float64 `json:"lobby_phase_s"`
	TotalSeconds float64 `json:"total_s"`
}

// Summary describes a sample.
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// SearchReport is what searches achieved and cost.
type SearchReport struct {
	Searches int `json:"searches"`
	// TargetSearches looked for the rare file, held by one node;
	// TargetFound is the share of them that got its holder's answer.
	TargetSearches int     `json:"target_searches"`
	TargetFound    float64 `json:"target_found"`
	// AnyFound is the share of all searches that got any answer.
	AnyFound float64 `json:"any_found"`
	// CommonSearches looked for a file held by at least 1% of the nodes;
	// CommonFound is the share of them that got an answer.
	CommonSearches int     `json:"common_searches"`
	CommonFound    float64 `json:"common_found"`
	// ResultsPerSearch counts a search's SearchResult messages on every
	// link (those dropped on the way included); ResultsMostHeld counts
	// them for the searches of file 1, the file held by the most nodes.
	ResultsPerSearch Summary `json:"results_per_search"`
	ResultsMostHeld  Summary `json:"results_most_held"`
	// Reach is the share of nodes a search reached.
	Reach Summary `json:"reach"`
	// Hops is the length of the path the first answer came back on.
	Hops Summary `json:"hops"`
	// FirstResultMs is the time from Search to the first answer.
	FirstResultMs Summary `json:"first_result_ms"`
	// MessagesPerSearch counts a search's Search and SearchResult
	// messages on every link.
	MessagesPerSearch Summary `json:"messages_per_search"`
	// MessagesPerNode counts the control messages each node wrote during
	// the search phase.
	MessagesPerNode Summary `json:"messages_per_node"`
	// LoadSearchesPerSecond is the network's searches per second at the
	// load of one search per node per Config.SearchEvery.
	LoadSearchesPerSecond float64 `json:"load_searches_per_second"`
	// LoadBytesPerNode is the router control bytes each node wrote per
	// second at that load: its bytes during the search phase, per search,
	// times LoadSearchesPerSecond.
	LoadBytesPerNode Summary `json:"load_bytes_per_node"`
	// LoadAnswerBytesPerNode is the part of LoadBytesPerNode that is
	// SearchResult messages (each node's sample apart, so its quantiles
	// are of their own).
	LoadAnswerBytesPerNode Summary `json:"load_answer_bytes_per_node"`
	// LoadLinkSearchRate is the Search messages per second on each
	// directed friend link that carried one, at that load: to compare
	// with tunnels.SearchesPerSecond.
	LoadLinkSearchRate Summary `json:"load_link_search_rate"`
	// RedundantCopies counts, per search, the copies a node received
	// after its first: the cost of flooding over a graph with cycles.
	RedundantCopies Summary `json:"redundant_copies"`
	// SameDirectionDuplicates counts (search, link, direction) that
	// carried a search more than once: must be 0.
	SameDirectionDuplicates int `json:"same_direction_duplicates"`
	// ReachByDistance[h] is the share of nodes at h hops from the origin
	// that a search reached.
	ReachByDistance []float64 `json:"reach_by_distance"`
	// SearchesDropped and MessagesDropped are the routers' counters: over
	// a friend's rate, and on a full send queue.
	SearchesDropped uint64 `json:"searches_dropped"`
	MessagesDropped uint64 `json:"messages_dropped"`
}

// TunnelReport is what tunnel setup to the rare file's holder achieved.
type TunnelReport struct {
	Tried   int     `json:"tried"`
	Success float64 `json:"success"`
	SetupMs Summary `json:"setup_ms"`
	// PathLength counts hops from origin to holder (relays + 1).
	PathLength Summary `json:"path_length"`
	// Errors counts failures by message.
	Errors map[string]int `json:"errors,omitempty"`
	// FailMs is how long failed setups took.
	FailMs          Summary `json:"fail_ms"`
	RequestsDropped uint64  `json:"requests_dropped"`
}

// RuleResult is how well one guessing rule names search origins.
type RuleResult struct {
	Rule      string  `json:"rule"`
	Guesses   int     `json:"guesses"`
	Correct   int     `json:"correct"`
	Positives int     `json:"positives"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
}

// ColluderResult is what c colluding nodes learn about search origins.
type ColluderResult struct {
	Share float64 `json:"share"`
	Count int     `json:"count"`
	// Searches counts searches whose origin is not a colluder.
	Searches int `json:"searches"`
	// FriendOfOrigin is the share of those searches whose origin has a
	// colluder among its friends.
	FriendOfOrigin float64 `json:"friend_of_origin"`
	// First: accuse the sender of the earliest copy any colluder got.
	First RuleResult `json:"first"`
	// Lead: the same, only when no other sender's copy reached a
	// colluder within half a link latency of it.
	Lead RuleResult `json:"lead"`
}

// PrivacyReport is what adversaries learn about who started a search.
type PrivacyReport struct {
	// Observations counts (node, search) pairs: a node's first copy of a
	// search it did not start.
	Observations int `json:"observations"`
	// BaseRate is the share of observations whose sender is the origin:
	// the precision of guessing "origin" every time.
	BaseRate float64 `json:"base_rate"`
	// DepthGivenOrigin[d] and DepthGivenRelay[d] are the shares of depth d
	// among all copies sent by origins and by relays.
	DepthGivenOrigin []float64 `json:"depth_given_origin"`
	DepthGivenRelay  []float64 `json:"depth_given_relay"`
	// Single lists one adversary's rules; BestDepth is the depth whose
	// rule has the best precision among those with at least 20 guesses.
	Single    []RuleResult     `json:"single"`
	BestDepth int              `json:"best_depth"`
	Colluders []ColluderResult `json:"colluders"`
	// Probing is what probing friends learn about which anonymous files
	// their neighbour holds; nil when there were none.
	Probing *ProbeReport `json:"probing,omitempty"`
}

// CostReport is what the nodes cost the machine.
type CostReport struct {
	HeapPerNodeKiB float64 `json:"heap_per_node_kib"`
	Goroutines     int     `json:"goroutines"`
	CPUPerSearchMs float64 `json:"cpu_per_search_ms"`
}

// LobbyReport is what one public lobby achieved and cost: created by a
// random node, joined by its members in breadth-first order from the
// creator, then Messages messages from random members.
type LobbyReport struct {
	// Skipped says why the lobby phase did not run; empty if it ran.
	Skipped string `json:"skipped,omitempty"`
	// Members counts the nodes meant to join, the creator included;
	// NotJoined those that never saw a friend announce the lobby
	// (0 in a healthy run).
	Members   int `json:"members"`
	NotJoined int `json:"not_joined"`
	// Established counts the members in the lobby from the start
	// (Config.LobbyEstablished; 0 when it was formed by joins), Joins
	// the members that joined it during the phase.
	Established int `json:"established"`
	Joins       int `json:"joins"`
	// MemberLinks counts the friend links between two members: the links
	// the lobby's traffic may use.
	MemberLinks int `json:"member_links"`
	// JoinRate is the most joins started per second; JoinSeconds how
	// long the members took to join.
	JoinRate    float64 `json:"join_rate_per_s"`
	JoinSeconds float64 `json:"join_phase_s"`
	// JoinDelivered is the share of (member, later member) pairs in which
	// the member stored the later member's JOIN.
	JoinDelivered float64 `json:"join_delivered"`
	// MessagesPerJoin counts a JOIN's frames on all links.
	MessagesPerJoin Summary `json:"messages_per_join"`

	// Messages counts the text messages sent, MessageRate a second;
	// SendErrors counts failed sends by error (none in a healthy run).
	Messages    int            `json:"messages"`
	MessageRate float64        `json:"message_rate_per_s"`
	SendErrors  map[string]int `json:"send_errors,omitempty"`
	// Delivered is the share of (subscriber, message) pairs in which the
	// subscriber stored the message; the subscribers of a message are the
	// members but its author. ByHistory counts the pairs delivered by a
	// history reply rather than relayed.
	Delivered      float64 `json:"delivered"`
	DeliveredPairs int     `json:"delivered_pairs"`
	ExpectedPairs  int     `json:"expected_pairs"`
	ByHistory      int     `json:"by_history"`
	// Complete is the share of messages that reached every subscriber.
	Complete float64 `json:"complete"`
	// ReachAllMs is, per message that reached every subscriber, the time
	// from Send to the last subscriber storing it; DeliveryMs the same
	// for every delivered pair.
	ReachAllMs Summary `json:"reach_all_ms"`
	DeliveryMs Summary `json:"delivery_ms"`
	// MessagesPerMessage counts a text message's frames on all links.
	// FloodMessages is what a flood costs in which every member sends the
	// message once to each member friend but the one it came from:
	// 2*MemberLinks - (members - 1).
	MessagesPerMessage Summary `json:"messages_per_message"`
	FloodMessages      int     `json:"flood_messages"`

	// SameDirectionDuplicates counts (message, link, direction) that
	// carried a lobby message more than once, over every message, JOINs
	// included: must be 0. TextDuplicates counts those of text messages.
	SameDirectionDuplicates int64 `json:"same_direction_duplicates"`
	TextDuplicates          int64 `json:"text_duplicates"`
	// Frames counts lobby message frames written on all links;
	// FramesUnread those not read at the other end when the run ended.
	Frames       int64 `json:"frames"`
	FramesUnread int64 `json:"frames_unread"`
	// RedundantDrops counts copies dropped by relays as already seen: a
	// message crosses a link both ways when both ends got it elsewhere
	// first, the cost of flooding over a graph with cycles.
	RedundantDrops uint64 `json:"redundant_drops"`
	// Dropped counts what relays dropped for any other reason, by chat's
	// Drop* names (friend_rate, author_rate, queue_full, ...): empty in a
	// healthy run. LinksReset counts lobby links reset for a bad frame.
	Dropped    map[string]uint64 `json:"dropped,omitempty"`
	LinksReset uint64            `json:"links_reset"`

	// CPUPerJoinMs and CPUPerMessageMs are the process's CPU time in the
	// join and message phases over the joins and messages: every relay's
	// signature checks, stores and writes.
	CPUPerJoinMs    float64 `json:"cpu_per_join_ms"`
	CPUPerMessageMs float64 `json:"cpu_per_message_ms"`
	// Presence is the keep-alive, join and leave traffic on the links
	// between members (lobby.go).
	Presence LobbyPresence `json:"presence"`
	// Signatures counts the lobby signature checks the nodes asked for
	// and those computed.
	Signatures SignatureChecks `json:"signatures"`

	// Rows are the per-message data behind the figures, for CSV.
	Rows []LobbyRow `json:"-"`
}

// SignatureChecks counts the lobby's signature checks. With one verifier
// shared by every simulated node (Config.LobbyEachVerifies false), Asked
// is what the members asked for, the N^2 a network does on N machines,
// and Computed what the process computed; with each node verifying,
// Shared is false and both are zero (not counted).
type SignatureChecks struct {
	Shared   bool  `json:"shared"`
	Asked    int64 `json:"asked"`
	Computed int64 `json:"computed"`
}

// LobbyRow is one text message of the lobby phase, for CSV.
type LobbyRow struct {
	K, Author  int
	SentMs     float64 // since the run's epoch
	Reached    int     // subscribers that stored it
	ByHistory  int
	ReachAllMs float64 // -1 if a subscriber never got it
	Frames     int
	Duplicates int
}

// SearchRow is one search, for CSV and charts.
type SearchRow struct {
	K, Origin, File  int
	Found            bool
	Holder           int
	Hops             int
	FirstResultMs    float64
	Reached          int
	Copies, Results  int
	Redundant        int
	SameDirDuplicate int
}

// TunnelRow is one tunnel, for CSV.
type TunnelRow struct {
	Origin  int
	OK      bool
	SetupMs float64
	Path    int
	Err     string
}

func reportConfig(cfg Config, g *Graph) ReportConfig {
	rc := ReportConfig{
		Nodes: g.N(), Degree: cfg.Degree, Graph: g.Kind, Rewire: cfg.Rewire,
		LatencyMs: ms(cfg.Latency), Bandwidth: cfg.Bandwidth, Seed: cfg.Seed, Files: cfg.Files,
		Searches: cfg.Searches, TargetShare: cfg.TargetShare, SearchRate: cfg.SearchRate, SearchEvery: cfg.SearchEvery, Tunnels: cfg.Tunnels,
		Edges: len(g.Edges()), MeanDegree: g.MeanDegree(),
	}
	for _, a := range g.Adj {
		rc.MaxDegree = max(rc.MaxDegree, len(a))
	}
	// Mean distance from up to 50 sources.
	var sum, cnt float64
	for s := 0; s < g.N(); s += max(1, g.N()/50) {
		for _, d := range g.Distances(s) {
			if d > 0 {
				sum += float64(d)
				cnt++
			}
		}
	}
	if cnt > 0 {
		rc.MeanDistance = sum / cnt
	}
	return rc
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize returns the summary of xs (which it sorts).
func summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	slices.Sort(xs)
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return Summary{N: len(xs), Mean: sum / float64(len(xs)), P50: quantile(xs, 0.5), P95: quantile(xs, 0.95), P99: quantile(xs, 0.99), Max: xs[len(xs)-1]}
}

// quantile returns the q-quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (r *RuleResult) finish() {
	r.Precision = ratio(r.Correct, r.Guesses)
	r.Recall = ratio(r.Correct, r.Positives)
}

// firstCopy is a node's first copy of a search.
type firstCopy struct {
	from  int
	depth int
	at    time.Duration
	lead  bool // no other sender's copy within half a latency
	walk  bool // a walking copy
}

// analyse turns the observations into the report's figures.
func analyse(cfg Config, g *Graph, recs []*searchRec, tuns []tunnelRec, rep *Report) {
	n := g.N()
	half := cfg.Latency / 2
	var reach, hops, first, msgs, redundant []float64
	var dist []struct{ reached, total int }
	var targetFound, anyFound, commonFound int
	var results, resultsMost []float64
	priv := &rep.Privacy
	var depthO, depthR [tunnels.MaxDepth + 1]int
	single := map[string]*RuleResult{}
	rule := func(name string) *RuleResult {
		if single[name] == nil {
			single[name] = &RuleResult{Rule: name}
		}
		return single[name]
	}
	firsts := make([][]firstCopy, len(recs)) // per search, per node; from -1 if none

	for k, rec := range recs {
		if rec == nil {
			continue
		}
		rec.mu.Lock()
		copies := slices.Clone(rec.copies)
		row := SearchRow{K: k, Origin: rec.origin, File: rec.file, Found: rec.found, Holder: rec.firstHolder,
			FirstResultMs: ms(rec.firstResult), Copies: len(copies), Results: rec.results, Hops: -1}
		rec.mu.Unlock()
		slices.SortStableFunc(copies, func(a, b copyObs) int { return cmp.Compare(a.at, b.at) })

		fc := make([]firstCopy, n)
		for i := range fc {
			fc[i].from = -1
		}
		seen := make(map[[2]int32]bool, len(copies))
		byTo := make([][]copyObs, n)
		for _, c := range copies {
			key := [2]int32{c.from, c.to}
			if seen[key] {
				row.SameDirDuplicate++
			}
			seen[key] = true
			byTo[c.to] = append(byTo[c.to], c)
			if int(c.from) == rec.origin {
				depthO[c.depth]++
			} else {
				depthR[c.depth]++
			}
		}
		for i, cs := range byTo {
			if i == rec.origin || len(cs) == 0 {
				continue
			}
			c0 := cs[0]
			lead := true
			for _, c := range cs[1:] {
				if c.at-c0.at > half {
					break
				}
				if c.from != c0.from {
					lead = false
				}
			}
			fc[i] = firstCopy{from: int(c0.from), depth: int(c0.depth), at: c0.at, lead: lead, walk: c0.walk}
			row.Reached++
		}
		row.Redundant = len(copies) - row.Reached
		firsts[k] = fc
		if rec.found && row.Holder >= 0 && row.Holder < n {
			h, steps := row.Holder, 0
			for h != rec.origin && h >= 0 && steps <= n {
				h = fc[h].from
				steps++
			}
			if h == rec.origin {
				row.Hops = steps
				hops = append(hops, float64(steps))
			}
		}
		if rec.file == 0 {
			rep.Search.TargetSearches++
			if rec.found {
				targetFound++
			}
		}
		if rec.found {
			anyFound++
			first = append(first, row.FirstResultMs)
		}
		reach = append(reach, float64(row.Reached+1)/float64(n))
		msgs = append(msgs, float64(row.Copies+row.Results))
		redundant = append(redundant, float64(row.Redundant))
		results = append(results, float64(row.Results))
		if rec.file == 1 {
			resultsMost = append(resultsMost, float64(row.Results))
		}
		if rec.file >= 1 && math.Ceil(float64(n)*cfg.PopularShare/float64(rec.file)) >= 0.01*float64(n) {
			rep.Search.CommonSearches++
			if rec.found {
				commonFound++
			}
		}
		rep.Search.SameDirectionDuplicates += row.SameDirDuplicate
		for i, d := range g.Distances(rec.origin) {
			if d <= 0 {
				continue
			}
			for len(dist) <= d {
				dist = append(dist, struct{ reached, total int }{})
			}
			dist[d].total++
			if fc[i].from >= 0 {
				dist[d].reached++
			}
		}
		rep.SearchRows = append(rep.SearchRows, row)

		// One adversary at each node, guessing from its first copy.
		for _, c := range fc {
			if c.from < 0 {
				continue
			}
			truth := c.from == rec.origin
			priv.Observations++
			guess := []*RuleResult{rule("first sender"), rule(fmt.Sprintf("depth %d", c.depth))}
			if c.lead {
				guess = append(guess, rule("lead"))
			}
			if c.walk {
				guess = append(guess, rule("walking copy"))
			}
			for _, r := range guess {
				r.Guesses++
				if truth {
					r.Correct++
				}
			}
		}
	}
	// Positives: (friend of the origin, search) pairs in which the friend
	// got the search, the pairs an adversary would like to accuse.
	positives := 0
	for k, rec := range recs {
		if rec == nil || firsts[k] == nil {
			continue
		}
		for _, a := range g.Adj[rec.origin] {
			if firsts[k][a].from >= 0 {
				positives++
			}
		}
	}
	for _, r := range single {
		r.Positives = positives
		r.finish()
	}
	priv.BaseRate = ratio(rule("first sender").Correct, priv.Observations)
	priv.DepthGivenOrigin = shares(depthO[:])
	priv.DepthGivenRelay = shares(depthR[:])
	priv.BestDepth = -1
	for d := 0; d <= tunnels.MaxDepth; d++ {
		r := single[fmt.Sprintf("depth %d", d)]
		if r == nil || r.Guesses < 20 {
			continue
		}
		if priv.BestDepth < 0 || r.Precision > single[fmt.Sprintf("depth %d", priv.BestDepth)].Precision {
			priv.BestDepth = d
		}
	}
	priv.Single = []RuleResult{*rule("first sender"), *rule("lead"), *rule("walking copy")}
	if priv.BestDepth >= 0 {
		best := *single[fmt.Sprintf("depth %d", priv.BestDepth)]
		best.Rule = "best depth (" + best.Rule + ")"
		priv.Single = append(priv.Single, best)
	}
	if r := single[fmt.Sprintf("depth %d", tunnels.MaxDepth)]; r != nil {
		priv.Single = append(priv.Single, *r)
	}
	for ci, share := range cfg.Colluders {
		priv.Colluders = append(priv.Colluders, colluders(cfg, g, recs, firsts, share, uint64(ci)))
	}

	s := &rep.Search
	s.Searches = len(rep.SearchRows)
	s.TargetFound = ratio(targetFound, s.TargetSearches)
	s.AnyFound = ratio(anyFound, s.Searches)
	s.CommonFound = ratio(commonFound, s.CommonSearches)
	s.ResultsPerSearch = summarize(results)
	s.ResultsMostHeld = summarize(resultsMost)
	s.Reach = summarize(reach)
	s.Hops = summarize(hops)
	s.FirstResultMs = summarize(first)
	s.MessagesPerSearch = summarize(msgs)
	s.RedundantCopies = summarize(redundant)
	if len(dist) > 0 {
		s.ReachByDistance = []float64{1}
		for _, d := range dist[1:] {
			s.ReachByDistance = append(s.ReachByDistance, ratio(d.reached, d.total))
		}
	}

	t := &rep.Tunnels
	t.Tried = len(tuns)
	var setup, path, fail []float64
	ok := 0
	for _, tr := range tuns {
		row := TunnelRow{Origin: tr.origin, OK: tr.ok, SetupMs: ms(tr.setup), Err: tr.err}
		if tr.ok {
			ok++
			setup = append(setup, ms(tr.setup))
			row.Path = tr.relays + 1
			path = append(path, float64(row.Path))
		} else {
			if t.Errors == nil {
				t.Errors = map[string]int{}
			}
			t.Errors[tr.err]++
			fail = append(fail, ms(tr.setup))
		}
		rep.TunnelRows = append(rep.TunnelRows, row)
	}
	t.Success = ratio(ok, t.Tried)
	t.SetupMs = summarize(setup)
	t.PathLength = summarize(path)
	t.FailMs = summarize(fail)
}

func shares(counts []int) []float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = ratio(c, total)
	}
	return out
}

// colluders places round(share*N) colluders at random and applies the
// pooled rules to every search whose origin is not one of them: accuse
// the sender of the earliest copy any colluder received (First), and the
// same only when no other sender's copy reached a colluder within half a
// latency (Lead).
func colluders(cfg Config, g *Graph, recs []*searchRec, firsts [][]firstCopy, share float64, salt uint64) ColluderResult {
	n := g.N()
	count := max(1, int(math.Round(share*float64(n))))
	rng := mrand.New(mrand.NewPCG(cfg.Seed, 100+salt))
	bad := make([]bool, n)
	for _, v := range rng.Perm(n)[:count] {
		bad[v] = true
	}
	res := ColluderResult{Share: share, Count: count, First: RuleResult{Rule: "first"}, Lead: RuleResult{Rule: "lead"}}
	half := cfg.Latency / 2
	friendOf := 0
	for k, rec := range recs {
		if rec == nil || firsts[k] == nil || bad[rec.origin] {
			continue
		}
		res.Searches++
		for _, a := range g.Adj[rec.origin] {
			if bad[a] {
				friendOf++
				break
			}
		}
		// The colluders' first copies from senders outside the
		// coalition, earliest first.
		var cs []firstCopy
		for a, c := range firsts[k] {
			if bad[a] && c.from >= 0 && !bad[c.from] {
				cs = append(cs, c)
			}
		}
		if len(cs) == 0 {
			continue
		}
		slices.SortStableFunc(cs, func(a, b firstCopy) int { return cmp.Compare(a.at, b.at) })
		accused := cs[0].from
		res.First.Guesses++
		if accused == rec.origin {
			res.First.Correct++
		}
		lead := true
		for _, c := range cs[1:] {
			if c.at-cs[0].at > half {
				break
			}
			if c.from != accused {
				lead = false
			}
		}
		if lead {
			res.Lead.Guesses++
			if accused == rec.origin {
				res.Lead.Correct++
			}
		}
	}
	res.First.Positives, res.Lead.Positives = res.Searches, res.Searches
	res.First.finish()
	res.Lead.finish()
	res.FriendOfOrigin = ratio(friendOf, res.Searches)
	return res
}

// WriteTable prints the report as aligned text.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Config
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	p("graph\t%s, %d nodes, %d edges, mean degree %.2f (max %d), mean distance %.2f hops", c.Graph, c.Nodes, c.Edges, c.MeanDegree, c.MaxDegree, c.MeanDistance)
	p("links\t%.0f ms latency, %s", c.LatencyMs, bandwidthString(c.Bandwidth))
	p("workload\tseed %d, %d searches at %.1f/s (%.0f%% for the file held by one node), %d files, %d tunnels", c.Seed, c.Searches, c.SearchRate, 100*c.TargetShare, c.Files, c.Tunnels)
	p("time\tlinks up %.1fs, searches %.1fs, probing %.1fs, lobby %.1fs, total %.1fs", r.Timing.LinksUpSeconds, r.Timing.SearchSeconds, r.Timing.ProbeSeconds, r.Timing.LobbySeconds, r.Timing.TotalSeconds)
	p("")
	s := r.Search
	p("SEARCH\t")
	p("rare file found\t%.1f%% of %d searches", 100*s.TargetFound, s.TargetSearches)
	p("any file found\t%.1f%% of %d searches", 100*s.AnyFound, s.Searches)
	p("file held by 1%% of nodes or more found\t%.1f%% of %d searches", 100*s.CommonFound, s.CommonSearches)
	p("answer messages per search mean / p95; file 1 mean\t%.0f / %.0f; %.0f", s.ResultsPerSearch.Mean, s.ResultsPerSearch.P95, s.ResultsMostHeld.Mean)
	p("reach\tmean %.1f%% of nodes, p50 %.1f%%, p95 %.1f%%", 100*s.Reach.Mean, 100*s.Reach.P50, 100*s.Reach.P95)
	p("hops to first result\tp50 %.0f, p95 %.0f, max %.0f", s.Hops.P50, s.Hops.P95, s.Hops.Max)
	p("time to first result\tp50 %.0f ms, p95 %.0f ms", s.FirstResultMs.P50, s.FirstResultMs.P95)
	p("messages per search\tmean %.0f, p50 %.0f, p95 %.0f", s.MessagesPerSearch.Mean, s.MessagesPerSearch.P50, s.MessagesPerSearch.P95)
	p("messages per node\tmean %.0f, p95 %.0f, max %.0f (whole search phase)", s.MessagesPerNode.Mean, s.MessagesPerNode.P95, s.MessagesPerNode.Max)
	p("at one search per node per %v\t%.1f searches/s in the network", r.Config.SearchEvery, s.LoadSearchesPerSecond)
	p("  router bytes sent per node\tp50 %.0f B/s, p99 %.0f B/s, max %.0f B/s", s.LoadBytesPerNode.P50, s.LoadBytesPerNode.P99, s.LoadBytesPerNode.Max)
	p("  of which answers\tp50 %.0f B/s, p99 %.0f B/s, max %.0f B/s", s.LoadAnswerBytesPerNode.P50, s.LoadAnswerBytesPerNode.P99, s.LoadAnswerBytesPerNode.Max)
	p("  searches per directed link\tp50 %.2f/s, p99 %.2f/s, max %.2f/s (a friend accepts %d/s)", s.LoadLinkSearchRate.P50, s.LoadLinkSearchRate.P99, s.LoadLinkSearchRate.Max, tunnels.SearchesPerSecond)
	p("redundant copies per search\tmean %.0f (copies after a node's first)", s.RedundantCopies.Mean)
	p("same search twice on a link, same direction\t%d", s.SameDirectionDuplicates)
	p("dropped by routers\t%d searches over rate, %d messages on full queues", s.SearchesDropped, s.MessagesDropped)
	var rd []string
	for h, f := range s.ReachByDistance {
		rd = append(rd, fmt.Sprintf("%d:%.0f%%", h, 100*f))
	}
	p("reach by distance (hops:share)\t%s", strings.Join(rd, " "))
	p("")
	t := r.Tunnels
	p("TUNNELS\t")
	p("setup success\t%.0f%% of %d", 100*t.Success, t.Tried)
	p("setup time\tp50 %.0f ms, p95 %.0f ms", t.SetupMs.P50, t.SetupMs.P95)
	p("path length\tmean %.1f, p50 %.0f, p95 %.0f hops", t.PathLength.Mean, t.PathLength.P50, t.PathLength.P95)
	for e, k := range t.Errors {
		p("failures\t%d: %s (mean %.0f ms to fail)", k, e, t.FailMs.Mean)
	}
	p("tunnel requests dropped\t%d over a friend's rate", t.RequestsDropped)
	p("")
	pr := r.Privacy
	p("PRIVACY\t(rules and definitions: go doc kith/internal/sim)")
	p("base rate\t%.4f of %d first copies came from the origin", pr.BaseRate, pr.Observations)
	p("depth | origin\t%s", fmtShares(pr.DepthGivenOrigin))
	p("depth | relay\t%s", fmtShares(pr.DepthGivenRelay))
	for _, x := range pr.Single {
		p("one adversary, %s\tprecision %.3f, recall %.3f (%d guesses)", x.Rule, x.Precision, x.Recall, x.Guesses)
	}
	for _, x := range pr.Colluders {
		p("%.0f%% colluders (%d)\tfirst: identify %.1f%% at precision %.2f; lead: identify %.1f%% at precision %.2f; origin has a colluding friend in %.1f%%",
			100*x.Share, x.Count, 100*x.First.Recall, x.First.Precision, 100*x.Lead.Recall, x.Lead.Precision, 100*x.FriendOfOrigin)
	}
	if pb := pr.Probing; pb != nil {
		p("probing friends\t%d, each asking its neighbour about a file of its own, of a friend of it, of a farther node", pb.Probers)
		for _, x := range pb.Rules {
			p("probing, %s, %s: %s\tprecision %.2f (base rate %.2f of %d), recall %.2f (%d guesses)",
				x.Probe, x.Population, x.Rule, x.Precision, x.BaseRate, x.Cases, x.Recall, x.Guesses)
		}
		for _, probe := range []string{"search", "tunnel"} {
			var parts []string
			for _, kind := range []string{probeOwn, probeNextHop, probeFarther} {
				if s, ok := pb.AnswerMs[probe+" "+kind]; ok {
					parts = append(parts, fmt.Sprintf("%s p50 %.0f ms (%d)", kind, s.P50, s.N))
				}
			}
			if len(parts) > 0 {
				p("probing, %s answer time\t%s", probe, strings.Join(parts, "; "))
			}
		}
	}
	p("")
	p("COST\t")
	p("memory\t%.0f KiB heap per node, %d goroutines", r.Cost.HeapPerNodeKiB, r.Cost.Goroutines)
	p("cpu\t%.1f ms per search (whole process, search phase)", r.Cost.CPUPerSearchMs)
	p("")
	r.writeLobby(p)
	if r.FriendsDisconnected > 0 || r.Undecoded > 0 {
		p("ANOMALIES\t%d friends disconnected, %d undecoded writes", r.FriendsDisconnected, r.Undecoded)
	}
	return tw.Flush()
}

// writeLobby prints the LOBBIES section of the table.
func (r *Report) writeLobby(p func(string, ...any)) {
	l := r.Lobby
	switch {
	case l == nil:
		p("LOBBIES\toff")
		return
	case l.Skipped != "":
		p("LOBBIES\tskipped: %s", l.Skipped)
		return
	}
	p("LOBBIES\t(one public lobby; definitions: go doc kith/internal/sim)")
	p("members\t%d (%d never saw it announced), %d links between members", l.Members, l.NotJoined, l.MemberLinks)
	if l.Established > 0 {
		p("established\t%d members in the lobby from the start (no JOIN), knowing its size", l.Established)
	}
	p("joins\t%d in %.1fs at up to %.1f/s; each reached %.2f%% of earlier members in %.0f messages (mean)", l.Joins, l.JoinSeconds, l.JoinRate, 100*l.JoinDelivered, l.MessagesPerJoin.Mean)
	p("messages\t%d at %.1f/s from random members", l.Messages, l.MessageRate)
	for e, k := range l.SendErrors {
		p("send errors\t%d: %s", k, e)
	}
	p("delivered\t%.2f%% of %d (subscriber, message) pairs (%d by history); %.0f%% of messages reached everyone", 100*l.Delivered, l.ExpectedPairs, l.ByHistory, 100*l.Complete)
	p("time to reach all subscribers\tp50 %.0f ms, p95 %.0f ms, max %.0f ms", l.ReachAllMs.P50, l.ReachAllMs.P95, l.ReachAllMs.Max)
	p("time to each subscriber\tp50 %.0f ms, p95 %.0f ms", l.DeliveryMs.P50, l.DeliveryMs.P95)
	p("messages per lobby message\tmean %.0f, p95 %.0f (flood: %d)", l.MessagesPerMessage.Mean, l.MessagesPerMessage.P95, l.FloodMessages)
	p("same message twice on a link, same direction\t%d (%d of text messages), over %d frames", l.SameDirectionDuplicates, l.TextDuplicates, l.Frames)
	p("relay drops\t%d redundant copies; other: %s; %d links reset, %d frames unread", l.RedundantDrops, fmtCounts(l.Dropped), l.LinksReset, l.FramesUnread)
	p("cpu\t%.1f ms per join, %.1f ms per message (whole process)", l.CPUPerJoinMs, l.CPUPerMessageMs)
	if l.Signatures.Shared {
		p("signature checks\t%d asked by the members, %d computed (one verifier for all nodes, remembering answers: a network computes each on its own machine)", l.Signatures.Asked, l.Signatures.Computed)
	} else {
		p("signature checks\teach node computes its own")
	}
	l.Presence.write(p)
}

// fmtCounts prints counts by name, sorted, or "none".
func fmtCounts(m map[string]uint64) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s %d", k, v))
	}
	if len(out) == 0 {
		return "none"
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func fmtShares(xs []float64) string {
	var out []string
	for d, x := range xs {
		out = append(out, fmt.Sprintf("%d:%.3f", d, x))
	}
	return strings.Join(out, " ")
}

func bandwidthString(b float64) string {
	if b <= 0 {
		return "unlimited bandwidth"
	}
	return fmt.Sprintf("%.1f MB/s", b/1e6)
}
