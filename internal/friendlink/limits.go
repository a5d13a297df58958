package friendlink

import "time"

// FaultPause is how long a friend whose link broke the protocol (see the
// package documentation, "Misbehaviour") is refused a new link of that
// protocol, in both directions. A minute: long enough that a friend that
// sends garbage on every new link costs a stream and a read a minute,
// short enough that a friend whose bug was one bad frame, or whose
// software was upgraded, is back soon without anyone doing anything.
const FaultPause = time.Minute

// Defaults for the zero fields of a Config.
const (
	// DefaultRetry is how often a Manager (re)opens links to connected
	// friends that have none.
	DefaultRetry = 2 * time.Second
	// DefaultOpenTimeout bounds opening a link's stream.
	DefaultOpenTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one write to a link; a friend that does
	// not read for that long loses its link.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultFrameTimeout bounds the time from a frame's first byte to its
	// last; a slower frame is a peer fault.
	DefaultFrameTimeout = 10 * time.Second
	// DefaultMaxInbound caps the inbound streams of a protocol one friend
	// may have open at once: its link, and a second while a friend that
	// reconnected replaces its old one. More are reset at once.
	DefaultMaxInbound = 2
)

// The writer's buffers.
const (
	// writeBatch is how many encoded bytes the writer gathers before it
	// writes them without waiting for the queue to empty: a burst of
	// small messages costs one write per 32 KiB, not one each, and a
	// write never waits long behind a large queue. The buffer holds only
	// messages still charged to the queue, so it needs no reservation of
	// its own.
	writeBatch = 32 << 10
	// keepBuffer is the largest encoding buffer a writer keeps while its
	// queue is empty, so an idle link holds little memory.
	keepBuffer = 4 << 10
	// keepItems is the most queue slots a link keeps allocated while its
	// queue is empty.
	keepItems = 64
)
