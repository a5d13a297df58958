// Package friendlink keeps one long-lived stream per connected friend on
// one protocol: the "link" that kith's router (/kith/router/1) and lobbies
// (/kith/lobby/1) carry their control messages on. It is the one copy of
// that mechanism; its owners only say how to encode what they send and
// how to read what arrives.
//
// # Opening
//
// Of each pair of friends the lower peer ID opens the link (Opener), with
// network.WithNoDial: a link goes to a friend that is connected already,
// never causes a dial. A Manager watches the event bus (identify
// completed, connectedness changed) and, every Config.Retry, opens a link
// to each connected friend that has none; a link whose friend
// disconnects is stopped. The other side accepts a link only from a
// friend, and at most Config.MaxInbound inbound streams of the protocol
// per friend at once (one link, and its replacement while a friend that
// reconnected opens a new one). When both sides opened a stream, the
// lower peer ID's stays and the other is reset.
//
// # Sending
//
// Each link has a send queue bounded in messages (Config.Queue) and in
// bytes (Config.QueueBytes). A queued message is charged, at the size
// Config.Size gives for it, to the queue's byte count and to the stream's
// resource-manager scope until it is written; what does not fit, or what
// the resource manager refuses, is dropped and counted, so a slow friend
// costs dropped messages, never a blocked owner. One writer goroutine per
// link encodes what is queued (Config.Encode) into one reused buffer, or
// copies bytes queued already encoded (Link.SendEncoded), and writes it
// in few writes: when the buffer reaches writeBatch bytes, and when the
// queue is empty. Each write must finish within Config.WriteTimeout; a
// friend that does not read for that long loses its link.
//
// # Reading
//
// One reader goroutine per link hands the owner's Handler.Serve a
// kith/internal/frame Reader over the stream: frames of at most
// Config.MaxFrame bytes, buffers grown as bytes arrive and charged to
// the stream's scope, each frame within Config.FrameTimeout of its first
// byte.
//
// # Misbehaviour
//
// One policy for every protocol on a Manager. A friend whose link read
// ends with a peer fault (frame.IsPeerFault: a frame too large, malformed
// or too slow; or an error for which the owner's Config.PeerFault holds,
// its own protocol error) has that link reset, is counted
// (Stats.Faults), is logged at Info (its misbehaviour is not something
// the user can act on, so never Warn), and is refused a new link of that
// protocol, in both directions, for FaultPause. Its connection, and its
// links and streams of other protocols, are left alone: one broken
// protocol implementation does not cut a friend off from the rest, and a
// friend that keeps sending garbage costs one stream and one read a
// minute. A link that ends for any other reason (the stream reset or
// closed, a write timeout, the friend gone) is simply reopened by the
// retry.
//
// # Lifecycle
//
// A Manager owns its goroutines: the event loop, one per link being
// opened, and the reader and writer of each link. Close removes the
// stream handler, stops every link and waits for all of them, including
// the owner's Handler.Down calls.
package friendlink
