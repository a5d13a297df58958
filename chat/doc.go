// Package chat is kith's messaging: private chat between friends with an
// outbox that survives restarts, pseudonymous chat identities, chat
// lobbies relayed friend to friend, and distant chat with a chat identity
// over an anonymous tunnel.
//
// Private chat (/kith/chat/1). A message is written to the sender's
// history and outbox in one bbolt transaction before Send returns. A
// courier per friend opens a stream when the friend is online and the
// outbox is not empty, writes the outbox in order and removes each
// message when the friend's Ack for it arrives. The receiver stores a
// message (deduplicated by its random 128-bit id) before it acks, so a
// crash on either side at any moment leads to a resend that the receiver
// drops as a duplicate: each message appears once in each history, in
// the order it was sent.
//
// What a peer can make this node hold is bounded (limits.go): in memory,
// a stream's sender window, a friend's ChatStreamsPerFriend streams and
// the node's MaxChatStreams; on disk, HistoryBudget per conversation
// (the oldest messages go), ChatStorageBudget in all (then messages are
// refused, not acked), and small quotas for distant requests: messages
// from chat identities the user never wrote to nor accepted.
//
// Lobbies (/kith/lobby/1, lobby.go) carry signed messages friend to
// friend between a lobby's members, each message at most once per link
// and direction. Each pair of connected friends has one lobby link,
// kept by kith/internal/friendlink like the router's: a bounded send
// queue, and friendlink's misbehaviour policy for a friend that sends a
// frame that breaks the protocol (its lobby link reset and refused for
// friendlink.FaultPause; its connection and other protocols untouched).
// What live relay misses (a relay down, a full queue, a wrong clock)
// sync brings (lobby_sync.go): each side of a link lists the ids it
// holds and asks for those it lacks, and lists on what it newly stored.
//
// Distant chat carries the same frames inside an end-to-end Noise_XK
// session (tunnels.OpenChatSession) over a tunnel whose target is
// tunnels.TargetForChatID of the recipient's chat id, so relays learn
// neither the chat id nor the text. The recipient's node answers tunnel
// requests for its own identities' targets only. The outbox works as for
// private chat: a message to an identity that cannot be reached stays and
// leaves when a tunnel can be made.
package chat
