// Package f2f is kith's friend-to-friend layer: the node identity, invites,
// the friend list, the connection gater that admits only friends, the friend
// connector that keeps every reachable friend connected, and address
// discovery through a friends-only Kademlia DHT and (optionally) mDNS.
//
// Before the gate, inbound connections from sources that are not known
// friend endpoints are rate-limited (admission.go); a friend's addresses
// are stored and dialled only where they make sense (addrs.go); the
// friends DHT answers a friend only with the address of a peer it already
// knows and that is a friend of both (lookup.go).
//
// Everything above f2f (tunnels, share, chat) may assume that every libp2p
// connection of the host belongs to a friend: the Gater refuses every other
// peer right after the security handshake, in both directions, before any
// protocol stream is opened. Friendship is mutual because both gaters must
// agree; a one-sided friendship yields no connection.
//
// f2f knows nothing of files or chat.
package f2f
