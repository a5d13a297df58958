// Package share implements kith's file identity and transfer format: the
// BLAKE3 root that names a file, the Bao outboard that proves any 256 KiB
// chunk group of it, kith:// links, and the messages of the /kith/share/1
// protocol.
//
// A file is known by its root, the plain BLAKE3-256 hash that b3sum prints.
// When a file is indexed, one pass over its bytes yields the root and an
// outboard (a Bao tree with 256 KiB groups, 64 bytes per group). A peer
// serving a range of groups sends each group's proof, cut from the outboard,
// ahead of the data, so a downloader verifies every group as it arrives
// and never keeps a byte the root does not vouch for.
//
// The wire code here only frames messages over an io.ReadWriter; it knows
// nothing of libp2p, so the same protocol runs over a direct friend stream
// and over an anonymous tunnel. Serving and downloading are built on top by
// the callers.
package share
