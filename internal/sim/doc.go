// Package sim is kith's network simulator: it runs the real turtle
// router (package tunnels) and the real chat lobby service (package chat)
// on hundreds or thousands of in-process libp2p hosts joined by a
// generated friend graph, drives a workload of searches, tunnel setups
// and lobby messages, and reports what users and the privacy model care
// about. `kith sim` is its command line.
//
// # Model
//
// A run builds a friend graph, deterministic from the seed: a
// Watts–Strogatz small world (a ring lattice of the given degree with
// each edge rewired with probability 0.1), a Barabási–Albert scale-free
// graph, or the ring lattice alone. Each vertex is a host on a go-libp2p
// mocknet with an Ed25519 identity derived from the seed; each edge is a
// mocknet link with the configured latency and bandwidth (latency is
// added to every write) and a connection, so the mocknet's topology is
// the friend graph. Each host runs an unmodified tunnels.Router whose
// friends are its graph neighbours and whose depth randomness is a PCG
// seeded from the seed and the node: nothing of the router is modelled.
//
// Files: file 0 is held by one random node (the rare file); file k >= 1
// by ceil(N*PopularShare/k) random nodes. Searches look for a file by
// root hash, the rare file with probability TargetShare, else file k
// with probability proportional to 1/k, from random origins that do not
// hold it, started at SearchRate per second. A search crosses each link
// at most once each way, so SearchRate bounds the load on every link and
// must stay under tunnels.SearchesPerSecond. The traffic figures are
// given for another load, one search per node per SearchEvery (ten
// minutes): what each node wrote per search of the run, times the
// searches per second the whole network makes at that load, which a
// simulation on a few cores could not run in real time at 10,000 nodes
// (every search costs about three messages per node); the answer
// messages' part of those bytes is given apart, and so are the answer
// messages per search, for all searches and for those of file 1, the
// file held by the most nodes. Searches for files held by at least 1%
// of the nodes (files 1 to PopularShare/0.01) are counted apart too
// (CommonFound). Then Tunnels
// tunnels are opened one after another from random origins to the rare
// file's holder.
//
// What the nodes do is seen through tunnels.Tap: every control message
// each router writes on each link is decoded, with its time. A node's
// first copy of a search is the one with the earliest write (every link
// has the same latency); the path an answer took is followed back from
// the holder along first copies. A tunnel's relays are the nodes whose
// data tap moved bytes while it came up.
//
// # Privacy rules
//
// One adversary: every node in turn plays an adversary that sees the
// searches it relays and, for each search it did not start, looks at its
// first copy (sender, depth, time) and decides whether to accuse the
// sender of being the origin. Each accusation is right when the sender
// is the origin. Precision is right accusations over accusations; recall
// is right accusations over the (friend of the origin, search) pairs in
// which the friend got the search. The rules:
//
//   - first sender: always accuse. Its precision is the base rate, the
//     share of first copies that come straight from the origin.
//   - depth d: accuse when the first copy's depth is d. The report gives
//     the best such d (the best precision among depths with at least 20
//     accusations) and d = MaxDepth. The router's depth rule is meant to
//     make every d as likely from an origin as from a relay, so these
//     should stay at the base rate; the report also lists the depth
//     distribution of copies sent by origins and by relays.
//   - walking copy: accuse when the first copy is a walking one
//     (tunnels.Search.Walk): the search's first hops, of which the
//     origin sends the first; its precision is what the walk's length
//     leaves, about 1-tunnels.SearchWalkKeep.
//   - lead: accuse when no copy from another sender arrives within half
//     a link latency of the first. It uses timing, which the depth rule
//     does not hide, and on a mocknet with equal latencies timing is
//     cleaner than on the Internet: read it as an upper bound.
//
// Colluders: round(c*N) nodes chosen at random pool what they see. For
// each search from a node outside the coalition they accuse the sender
// of the earliest copy any of them received from a non-colluder (rule
// first), or do so only when no other sender's copy reached any of them
// within half a link latency (rule lead). The report gives, per share c,
// the fraction of searches whose origin they name correctly (recall),
// the precision of their accusations, and the share of searches whose
// origin has a colluder among its friends, which bounds what first-copy
// rules can achieve.
//
// Probing friends: Probers hosts outside the graph, each befriended by
// one random node, its neighbour (distinct ones), run no router; each
// writes hand-made messages on its router stream, as a hostile friend
// would. Each asks its neighbour about three files added for it, held by
// one node each: the neighbour ("own"), a random friend of the neighbour
// ("next hop"), and a random node two or more hops from it ("farther").
// For each file it sends a search by root hash at depth 0 and at
// MaxDepth, and, for the first two, a tunnel request at depth 0 and at
// MaxDepth (searches at SearchRate a second across all probers, tunnel
// requests at 0.9 of tunnels.TunnelRequestsPerSecond: every probe may
// cross every link), and records the time from writing each probe to its
// first answer: a search answer that opens, or a TunnelOK (which it closes
// at once). It then judges "my neighbour holds it" by three rules: a
// depth-0 probe was answered; the full-depth probe was answered within
// 100 ms (the review's attacker saw own answers in 1-4 ms, the next hop's
// after 132 ms); and the full-depth probe was answered within T, for the
// T of a grid (25 ms to 3 s) with the best precision among those with at
// least 5 guesses, which the prober could not choose without knowing the
// truth: an upper bound. Each rule is judged in two populations of cases
// whose full-depth probe was answered, own with next hop and own with
// farther, each with a base rate of about one half.
//
// # Cost
//
// Memory per node is the growth of the Go heap in use (after a GC) from
// before the hosts start to when every router link is up, divided by N:
// host, mocknet link, router and its streams. CPU per search is the
// process's user and system time during the search phase divided by
// the number of searches; it includes every relay's work.
//
// # Lobbies
//
// After the tunnels, every node starts an unmodified chat.Lobbies on its
// host, with its own bbolt file (store.Options.NoSync: the files live in
// a temporary folder removed at the end) and one chat identity, and a
// lobby link comes up on every friend link. A random node creates a
// public lobby; the members are the creator and the nodes nearest it in
// a breadth-first walk of the friend graph (LobbyMembers of all nodes),
// and they join in that order, each once a friend's announcement shows
// the lobby in its List. A JOIN is a lobby message flooded to every
// member like any other, so joins start at most LobbyJoinRate a second
// (under chat.LobbyFriendRate, the limit of each friend link) and at
// most LobbyJoinWindow at a time may still be on their way to the
// members that joined before them. Once every link between two members
// is subscribed both ways, LobbyMessages text messages are sent,
// LobbyMessageRate a second, each by a random member whose per-author
// tokens (chat.LobbyAuthorRate) are not short at the time.
//
// A message is delivered to a member when that member's service stores
// it (its "lobby.message" event, relayed or from a history reply); its
// subscribers are the members but its author. Delivery is the share of
// (subscriber, message) pairs delivered, and the time to reach all
// subscribers runs from Send to the last subscriber's event. Every
// message frame written on a link is seen through LobbyConfig.OnRelay;
// a (message, link, direction) written twice is a duplicate and must
// never happen. Messages per lobby message count its frames on all
// links, against the cost of a flood in which each member sends it once
// to every member friend but its sender, 2*links - (members - 1); the
// extra copies a relay drops as already seen are the price of cycles.
// Whatever relays drop for another reason (rates, full queues) is
// reported by reason, as chat.LobbyStats counts it.
//
// The services are unmodified but for one hook: they share one
// signature verifier (LobbyConfig.Verify) that remembers its answers, a
// signature check being a pure function of key, message and signature.
// N members checking N JOINs are N^2 ed25519 checks, which a network
// spreads over N machines and one process would do on its two cores.
// Every member still asks for every check; the report gives both counts
// (signature checks: asked, computed). LobbyEachVerifies turns the
// sharing off.
//
// LobbyEstablished starts the phase in a lobby that exists instead:
// before the services start, every member but the last LobbyJoiners
// finds in its bbolt file the record of a lobby it was in when it last
// stopped, knowing its size (chat.StoreJoinedLobby), so it is in the
// lobby at once, says no JOIN, and its links subscribe it as they come
// up, as after a restart; then the LobbyJoiners join it live, one every
// 1/LobbyJoinRate seconds, and the messages follow. A lobby of 10,000
// formed by joins costs every link 10,000 JOINs within its presence
// budget; established, it is measured as it runs.
//
// Holders wait before they answer (HolderDelay, the routers'
// RouterConfig.HolderDelay; see package tunnels), which is why searches
// collect answers for SearchWindow = 5 s by default, as long as `kith
// search` listens by default.
//
// Keep-alives are on, at chat's intervals (from the lobby's estimated
// size; chat/lobby_presence.go). Presence (keep-alives, JOINs, LEAVEs)
// is counted per directed link between members from the first join to
// the end of LobbyHold: each link's mean rate over that span and its
// busiest 10 s, against the links' presence budget (chat.LobbyPresenceRate,
// or LobbyPresenceRate when set: a lower budget lets a lobby larger than
// the simulator's cores can check in real time run at the same ratios,
// its keep-alive intervals, the longest included, stretched by the
// same factor: chat's presence, slowed down).
// Keep-alives are not tracked per message, so the duplicate count covers
// text and JOINs. The join pacer waits for each joiner's links to carry
// the lobby, not for its JOIN to reach every member: a JOIN waits for
// each link's presence budget, and in a lobby joined faster than that
// reaches the members near its author first, the rest later or by sync.
package sim
