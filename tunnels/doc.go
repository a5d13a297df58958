// Package tunnels is kith's turtle router: it floods searches through
// friends of friends, sets up multi-hop tunnels to whoever holds a file or
// a chat identity, relays other nodes' tunnels, and runs end-to-end Noise
// sessions over them, so that friends of friends can find and fetch files
// and chat without anyone on the path learning who asked or what was sent.
//
// # Roles
//
// Control plane. Each friend link carries one long-lived router stream
// (RouterProtocol) of length-delimited protobuf messages, read with a hard
// size cap by MessageReader and checked strictly. A Search carries
// keywords or SearchHash of a root, never the root, and an ephemeral X25519
// reply key; it is flooded to every friend but its sender, duplicates are
// dropped by id, and each node remembers for a while which link it came
// from. Answers are sealed to the reply key with Seal (a Noise N one-way
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
// A Search or TunnelRequest carries a depth, the number of hops it may
// still travel, at most MaxDepth (6). A node that receives depth d serves
// the message; if d > 0 it forwards it to each other friend with depth
// ForwardDepth(d): d-1, or d unchanged with probability
// k(6) = DepthKeepAtMax (0.99) at the maximum and k(d) = DepthKeepBelowMax
// (0.5) below it. Depth 0 is never forwarded.
//
// An origin does exactly what a relay does, as if it had received its own
// message: it draws a depth v with OriginDepth and sends ForwardDepth(v)
// to each friend, a separate draw per friend as a relay makes. v is drawn
// from nu restricted to 1..6, where nu is the quasi-stationary
// distribution of the forwarding rule: the distribution that, fed through
// ForwardDepth, comes out unchanged once the messages that die (depth 0)
// are left out. It solves nu T = lambda nu for the forwarding kernel T,
// with lambda = k(6), which is found from the top down:
//
//	nu(d) = nu(d+1) (1 - k(d+1)) / (k(6) - k(d)),  k(0) = 0
//
// and gives, for the depth a node sends on one link,
//
//	depth  0     1     2     3     4     5     6
//	nu     0.010 0.020 0.019 0.019 0.019 0.018 0.895
//
// Why a neighbour cannot tell an origin from a relay by depth: what a
// relay sends is ForwardDepth of what it received; what it received was
// sent with distribution nu by its own predecessor (by induction from the
// origin), so, among messages that are forwarded, its input is nu on
// 1..6, exactly the origin's v, and its output is nu again. The depths a
// neighbour sees from an origin and from a relay at any distance from the
// origin have the same distribution, and because the origin also makes one
// draw per friend from one v, even friends comparing the depths they each
// got see the same joint distribution. A relay forwards the first copy of
// a search it receives, whatever its depth, since arrival order says
// nothing about depth. (This needs the keep probability at
// the maximum to be the largest: with one p for every depth no such
// distribution exists, and, for instance, an origin starting uniformly in
// 4..6 sends 6 more often and never 3, which a neighbour can count.) Depth
// alone therefore gives no evidence; timing, being the first to send a
// search id, and a node's set of links are beyond what depth can hide.
// Against timing, every node, the origin included, sends a search on to
// each friend after a random delay of up to DefaultSearchDelay, drawn
// anew per link, so that a copy that went round through a common friend
// often reaches a friend of the origin before the origin's own.
//
// Reach: a node sends depth 0 on a link with probability nu(0) = 1 - k(6),
// whatever it received, so a path from the origin goes on past each hop
// with probability k(6) = 0.99: hop 6 is reached along one path with
// probability 0.95, hop 11 with 0.90. Since a relay forwards only its
// first copy of a search, whatever depth the later ones carry, the depth
// of that first copy decides how far the search goes on from there; so
// reach follows k(6) closely, not the number of paths, and a search
// started low dies early unless k below the maximum is high too. With
// k(6) = 0.8 and 0.2 below, an origin started below the maximum three
// times in four and the simulator found a file held by one node of 1,000
// in about half the searches; with 0.99 and 0.2, in 93%; with 0.99 and
// 0.5 an origin starts at the maximum 90% of the time, and the others
// still travel about two hops per depth, so nearly every search finds it.
// The cost is that a search crosses nearly every friend link of such a
// network once; duplicate suppression by search id and the per-friend
// rates bound it.
//
// # Router and tunnel setup
//
// A Router keeps one control stream per friend link: the friend with the
// lower peer ID opens it when identify completes (and retries every
// LinkRetry while connected without one); the other side only accepts.
// Control messages to a friend go through a bounded queue (LinkQueue) and
// one writer goroutine, so a slow friend costs dropped messages, never a
// blocked router. Searches and tunnel requests are admitted per friend by
// token buckets (SearchesPerSecond, TunnelRequestsPerSecond); the excess
// is dropped and counted. A friend that sends an invalid message is cut
// off: its stream is reset and its connection closed.
//
// Tunnel setup. A TunnelRequest is flooded like a search, with a new
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
// disjoint paths give disjoint tunnels. A holder answers TunnelOK
// and does not forward; a relay that cannot forward answers TunnelFail at
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
