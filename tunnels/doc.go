// Package tunnels is kith's turtle router: it spreads searches through
// friends of friends, sets up multi-hop tunnels to whoever holds a file or
// a chat identity, relays other nodes' tunnels, and runs end-to-end Noise
// sessions over them, so that friends of friends can find and fetch files
// and chat without anyone on the path learning who asked or what was sent.
//
// # Roles
//
// Control plane. Each friend link carries one long-lived router stream
// (RouterProtocol) of length-delimited protobuf messages, read with a hard
// size cap by MessageReader (kith/internal/frame) and checked strictly. A Search carries
// keywords or SearchHash of a root, never the root, and an ephemeral X25519
// reply key; it first walks (each node sends it to one friend), then
// spreads (each node sends it to SearchFanout friends but its sender; see
// "Walk, then spread"), duplicates are dropped by id, and each node
// remembers for a while which link it came from. Answers are sealed to the reply key with Seal (a Noise N one-way
// message), so relays carry them back without reading them. A
// TunnelRequest carries only TargetForRoot or TargetForChatID, keyed
// BLAKE3 derivations with their own contexts, so relays never see the root
// and cannot even link a tunnel to a search by hash for the same file.
// Tunnel ids are picked per hop, so no two hops see the same id. Every
// limit is named in limits.go.
//
// Data plane. A tunnel is a chain of streams, one per hop, which each
// relay joins with Splice. The two ends run a Session over the chain:
// Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s for files, with a pre-shared key
// derived from the root (the downloader stays anonymous, relays see only
// ciphertext, and fresh ephemeral keys give forward secrecy), or
// Noise_XK_25519_ChaChaPoly_BLAKE2s to a chat identity's static key. A
// Session frames its data within Noise's 65535-byte message limit and
// marks a clean end with an authenticated empty frame, so a dropped link
// is told apart from the end of the stream.
//
// # Depth distribution
//
// A Search or TunnelRequest carries a depth, at most MaxDepth (6). A node
// that receives depth d serves the message and forwards it to each other
// friend with depth ForwardDepth(d): d-1, or d unchanged with probability
// k(6) = DepthKeepAtMax (0.99) at the maximum and k(d) = DepthKeepBelowMax
// (0.5) below it. Depth 0 is no last hop: a message received at depth 0
// goes on, still at depth 0, to each other friend with probability
// k(0) = DepthKeepAtZero (0.5), and to at least one; a path ends when a
// node does not send it on (see "What a friend learns about what you
// hold" for why depth 0 must not end a message, and why that choice is
// fixed per pair of links rather than drawn per message).
//
// An origin does exactly what a relay does, as if it had received its own
// message: it draws a depth v with OriginDepth and forwards it as a relay
// forwards depth v, a separate draw per friend. v is drawn from nu, the
// quasi-stationary distribution of the forwarding rule: the distribution
// that, fed through ForwardDepth, comes out unchanged once the messages
// not sent on are left out. It solves nu T = lambda nu for the forwarding
// kernel T, with lambda = k(6), which is found from the top down:
//
//	nu(d) = nu(d+1) (1 - k(d+1)) / (k(6) - k(d))
//
// and gives, for the depth a node sends on one link,
//
//	depth  0     1     2     3     4     5     6
//	nu     0.020 0.020 0.019 0.019 0.018 0.018 0.886
//
// Why a neighbour cannot tell an origin from a relay by depth: what a
// relay sends is ForwardDepth of what it received; what it received was
// sent with distribution nu by its own predecessor (by induction from the
// origin), so its input is nu, exactly the origin's v, and its output,
// among the messages it sends, is nu again. The depths a neighbour sees
// from an origin and from a relay at any distance from the origin have
// the same distribution, and because the origin also makes one draw per
// friend from one v, even friends comparing the depths they each got see
// the same joint distribution (tested to 0.006). Two departures from the
// per-message model are small: at depth 0 the router's choice is fixed per
// pair of links and sends to at least one friend, so relays send depth 0
// a little more often than nu(0) (the simulator shows 0.07 against 0.03
// for origins at 200 nodes, which makes "depth 0" a sign of a relay, not
// of an origin); and a node with one other friend always sends depth 0
// on. A relay forwards the first copy of a search it receives, whatever
// its depth, since arrival order says nothing about depth. (This needs
// the keep probability at the maximum to be the largest: with one p for
// every depth no such distribution exists, and, for instance, an origin
// starting uniformly in 4..6 sends 6 more often and never 3, which a
// neighbour can count.) Depth alone therefore gives no evidence; timing,
// being the first to send a search id, and a node's set of links are
// beyond what depth can hide. Against timing, every node that could be
// the origin (a walker, or a node with SearchFanout other friends or
// fewer) sends a search on after a delay of up to DefaultSearchDelay,
// different per link, so that a copy that went round through a common
// friend often reaches a friend of the origin before the origin's own;
// against being the first to send a search, the walk (see "Walk, then
// spread").
//
// Reach: a path from the origin goes on past each hop with probability
// k(6) = 0.99, whatever depth it started with (nu(0)(1 - k(0)) =
// 1 - k(6)): hop 6 is reached along one path with probability 0.94, hop 11
// with 0.89. Since a relay forwards only its first copy of a search,
// whatever depth the later ones carry, the depth of that first copy
// decides how far the search goes on from there; so reach follows k(6)
// closely, not the number of paths. With k(6) = 0.8 and 0.2 below, the
// simulator found a file held by one node of 1,000 in about half the
// searches; with 0.99 and 0.2, in 93%; with 0.99 and 0.5, in nearly all.
// At degree 8 depth bounds little: what a search costs is bounded by
// the spread (SearchFanout copies per node), duplicate suppression (a
// search crosses each friend link at most once each way) and the
// per-friend rates. On sparser graphs the lower depths end paths sooner,
// except that depth 0 never stops at a node with one other friend.
//
// # Walk, then spread
//
// A flood sends every search on every friend link: at degree 8 each node
// got it 7 times, 6 of them for nothing, and a network of N nodes
// searching once per node per ten minutes put N/600 searches a second on
// every link (at 10,000 nodes, 17 a second, over what a friend accepted
// then, 5). And the origin's friends all got the search first from the
// origin, so colluders among them named it (25% colluders: 58-65% of
// searches). So a search now goes in two phases:
//
// Walk. The origin sends its search, with Search.Walk set, to one friend;
// a node that gets a walking copy sends it on, still walking, to one
// friend but its sender with probability SearchWalkKeep (0.6), and else
// ends the walk and spreads it. Both choices are drawn for the search's
// id with the router's secret. The walk is 1/(1-0.6) = 2.5 hops on
// average, and a friend that gets a walking copy from X knows only that X
// is the origin with probability 0.4. A walk is never dropped as a
// duplicate: a node that gets it again (a loop, or its sender's dead
// end) sends it to a friend it has not sent it to (MaxWalkRepeats times
// at most), and a node with no other friend sends it back. A node with
// SearchFanout other friends or fewer does not walk: it spreads to all of
// them, and so does an origin with that few friends, so small networks
// and chains still flood.
//
// Spread. A node that ends the walk or gets a spreading copy first sends
// it to the SearchFanout (3) friends of the lowest draws among those but
// its sender, keyed by the sender, the friend and the query (so a probe
// repeated gets the same choice). Every node that gets a copy does so
// once: the copies are a random 3-out graph over the network, which
// reaches 97-99% of the nodes of a small world of degree 8 (kith sim),
// for about 3 messages per node per search instead of 7. Spreading
// copies from a node with more than SearchFanout other friends go
// without the search delay (an origin of that degree never spreads, so
// their timing says nothing about it) but after a shorter keyed one, up
// to RouterConfig.SpreadDelay (DefaultSpreadDelay, 100 ms); the others
// keep the search delay. A spreading copy whose time has come is not
// sent to a friend that sent this node the search meanwhile, nor at all,
// by a node with more than SearchFanout other friends, once
// SpreadHeardStop (2) friends besides its sender did: the search is all
// around it (a counter-based broadcast). That saves about one copy in
// seven at a cost of about one point of reach (kith sim). A node with
// fewer friends sends to each that did not send it the search: one of
// them may have no other way to it (a small group of friends). Tunnel
// requests spread the same way (their origin sends to at least as many
// friends as it wants tunnels) but do not walk.
//
// Answer budgets. A search carries how many answers its receiver may
// send back in all, its own and those it relays (Search.Answers; unset,
// as on a walk or from an older sender, it is MaxResultsPerSearch, 16).
// A node that spreads the search gives each friend an equal share of its
// own budget, at least 1: 16 at the end of the walk, 5 one hop further,
// 1 beyond, so that the nodes far from the walk's end send back about
// one answer each however many nodes behind them hold the file, where a
// fixed share per relay let a file held by 500 nodes of 10,000 cost 4,800
// answer messages a search for at most 16 delivered. A node's own answer
// comes out of its budget too (one from behind it that came first leaves
// no room for it), and each link's first answer is taken even when the
// budget is spent, so that a friend that answers every search at once
// cannot starve its relay's other links. An origin with SearchFanout
// friends or fewer, which spreads at once, gives each
// OriginSpreadAnswers (1), what a relay far from a walk's end gives, so
// that the budget does not mark its copies as the first of a spread.
// What the budget tells a friend: a copy with 5 (or 8, 16) comes from a
// node that ended a walk, which the simulator's adversaries knew already
// from the walking copies they see; it says nothing of the origin.
//
// What colluders learn: they name an origin only when the walk's first
// hop is one of them (with 25% colluders, 13-27% of searches, at the
// same precision; a flood gave 58-65%); the spread tells them where the
// walk ended. What stays constant along the path (the search id, the
// reply key, the query, the sealed answers) lets them link the copies
// they see, which the simulator grants them: its figures are for
// colluders who link copies perfectly, as by a constant request id.
// Per-hop search ids alone would hide nothing while the reply key and
// the sealed answers stay constant.
//
// # What a friend learns about what you hold
//
// A friend P that wants to know whether a file is yours (you are H) can
// send you a search or a tunnel request for it and watch the answer. Two
// things must not tell P that the answer is H's own rather than that of
// a node behind H:
//
// Depth. If depth 0 ended a message, an answer to a depth-0 probe could
// only be H's. So depth 0 goes on, to each other friend with probability
// DepthKeepAtZero and to at least one, and at degree 8 a depth-0 message
// reaches about as far as any other. If that choice were drawn per
// message, P could send the same probe many times and count: H's own file
// is answered every time, a friend F's only as often as H picks F. So H
// draws it once per pair of links (the link it came from, the link it
// goes to), keyed by RouterConfig.Secret, and P sees the same choice on
// every try. On a chain P - H - F, H always sends depth 0 on to F.
//
// Timing. Without a delay, H's own answer came in a few milliseconds and
// one from F, behind H, after H's search delay and a round trip to F.
// Now a holder sends its search answer after a per-link part drawn up to
// SearchDelay (as if it had sent the search on to a friend of its own)
// plus a holder delay, the sum of two parts each uniform up to half of
// RouterConfig.HolderDelay (1.5 s); a TunnelOK after a holder delay. All
// of these, and the search delays of relays, are fixed by the secret and
// the query (the root hash or the sorted, lower-cased keywords; the
// target for a tunnel) and the links, so repeating a probe gives the same
// times, and P gets one sample, not an average, of H's delay. F's answer
// reaches P one hop later than F's own delay: after H's search delay to F
// and a round trip to F. So what P can compare is one draw of H's delay
// against one draw of F's, shifted by a hop (on average 100 ms of search
// delay and a round trip; for tunnels, a round trip and a stream open).
// The shift is small against the spread of the delay, and the sum of two
// uniforms rises slowly from zero, so few of H's answers come earlier
// than any of F's could. Relays add no delay to the answers they pass
// back: every hop would add it to F's answers and not to H's, which only
// widens the shift.
//
// What remains, as measured by the simulator's probing friends (200
// nodes, 60 probers, BENCHMARKS.md): a depth-0 probe is answered whoever
// holds the file (precision of "answered at depth 0 means it is H's" =
// the base rate, 0.50); among files held by H or by one of H's friends,
// the best answer-time threshold names H at precision 0.61 for searches
// and 0.53 for tunnels (recall 0.33), against 0.50 by chance; the 100 ms
// threshold of the review never fires. Timing still tells near from far:
// against files held two or more hops from H, the best threshold has
// precision 0.88 at recall 0.12. It costs the time to a first answer and
// to a tunnel's setup 0.75 s on average (1.5 s at most) for one holder.
// Not hidden: a friend whose only friend is you knows every answer is
// yours; keyword searches can be reworded, and each distinct set of words
// is a new draw (a friend that finds many wordings of one name can average
// over them); once a tunnel is up, its round-trip time tells its length,
// which the data plane does not hide.
//
// # Router and tunnel setup
//
// A Router keeps one control stream per friend link, a
// kith/internal/friendlink link: the friend with the lower peer ID opens
// it, without dialing, when identify completes (and retries every
// LinkRetry while connected without one); the other side only accepts.
// Control messages to a friend go through a queue bounded in messages
// and bytes (LinkQueue, LinkQueueBytes), charged at their largest
// encoded size to the stream's resource-manager scope until written, and
// one writer goroutine that encodes them into one reused buffer and
// writes what is queued in few writes, so a slow friend costs dropped
// messages, never a blocked router; a write that waits WriteTimeout ends
// the link. A relay encodes a search once and queues the bytes on every
// link it goes to. Messages are read with kith/internal/frame: the
// buffer grows as the bytes arrive (a friend that announces a large
// message holds only what it sent), is charged to the stream's scope
// beyond 16 KiB, and a message must arrive within FrameTimeout of its
// first byte. Searches and tunnel requests are admitted per friend by
// token buckets (SearchesPerSecond, TunnelRequestsPerSecond); the excess
// is dropped and counted. A friend that sends an invalid, oversized or
// too slow message falls under friendlink's misbehaviour policy: its
// router link is reset and it is refused one, in both directions, for
// friendlink.FaultPause (a minute), counted in
// RouterStats.FriendsDisconnected and logged at Info; its connection,
// its tunnels and its other protocols are left alone. A friend may have
// MaxRouterStreamsPerFriend inbound router streams and
// MaxTunnelStreamsPerFriend inbound tunnel streams at once; more are reset
// in the handler. When a stream resets, the goroutines serving it end:
// the link's reader and writer, a Splice, a holder's session.
//
// Searches to one friend are paced below what it accepts
// (SearchSendRate, SearchSendBurst): the fixed delays would otherwise keep
// a burst together from hop to hop (a relay that stalled and then
// forwards what it read), and the friend would drop it.
//
// Answers. A relay remembers, for each search, the links it sent it on;
// an answer from any other link is dropped. From each of those links it
// takes an equal share of its answer budget (at least 1)
// and passes it back, so a friend that floods answers for every search it
// sees uses up its own link's share and not the others'. The origin opens
// every answer and counts, per link, those that open and those that do
// not, up to MaxResultsPerSearch each: garbage costs no genuine answer
// its place. What per-link budgets cannot separate is a flood and a
// genuine answer that come back over the same link: above the relay where
// the flood enters, both share that relay's link (the test
// TestSearchFloodStaysOnItsBranch shows the genuine answers of other
// branches arriving in every search). Fakes that open (sealed to the
// reply key by the flooder) reach the origin as results; their names are
// shown through kith/internal/peertext by the CLI.
//
// Tunnel setup. A TunnelRequest spreads like a search (it does not walk;
// its origin sends it to at least as many friends as it wants tunnels,
// and asks the friends it left out if that round gives none), with a new
// random TunnelID on every link, so a hop's routing entry is
// (left link, left id) <-> (right link, right id), and a RequestID that
// the origin picks and relays copy: a relay forwards a request once and
// refuses later copies (other paths, loops) with TunnelFail(duplicate),
// so each request crosses each link at most once in each direction, also
// after it was answered. The RequestID says nothing about the origin;
// like a search's id, it lets two colluding relays see that they carry
// the same request, which timing would tell them anyway, while the
// per-hop tunnel ids still differ on every link.
// Holders answer every copy that reaches them, one per link, which is how
// disjoint paths give disjoint tunnels. A holder answers TunnelOK, after
// its holder delay (see above), and does not forward; a relay that cannot forward answers TunnelFail at
// once; the first TunnelOK a relay gets wins and its other branches get
// TunnelClose; an origin keeps up to the number of tunnels it asked for,
// which is how two disjoint paths give two tunnels.
//
// Data-plane stream order. Streams are opened from left to right, in the
// order the TunnelOKs walk back:
//
//  1. A node that receives TunnelOK(id) from its right neighbour opens a
//     TunnelProtocol stream to that neighbour whose 8-byte header is id,
//     the tunnel's id on that link only.
//  2. Only once that stream is open does a relay pass TunnelOK(left id)
//     on to its left neighbour; the origin instead runs OpenFileSession
//     over the stream.
//  3. A node that accepts a TunnelProtocol stream looks its header up
//     among the tunnels it answered with TunnelOK on that link: a relay
//     splices it with the stream it opened in step 1 (which therefore
//     exists already), a holder runs AcceptFileSession with the root its
//     Holder gave and hands the Tunnel to OnTunnel. Unknown ids are reset.
//
// So the holder's stream is open first and the origin's last, and the
// origin's handshake flows through a chain that is already joined. When
// any link drops, Splice resets both of its streams, the reset runs along
// the chain, and both Sessions fail to read (ErrTruncated or a reset).
// Entries that never complete expire after TunnelRequestTTL.
package tunnels
