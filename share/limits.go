package share

import "time"

// Tree format. These follow from Bao with lukechampine.com/blake3/bao and
// must never change: a different group size gives a different outboard and
// different proofs for the same root.
const (
	// ChunkSize is the BLAKE3 chunk size.
	ChunkSize = 1024
	// GroupLog is the Bao group parameter: a chunk group holds
	// 1<<GroupLog chunks. It is the group argument of the bao functions.
	GroupLog = 8
	// GroupSize is the size of a chunk group, the unit of transfer and
	// verification: 256 KiB. Only the last group of a file may be shorter.
	GroupSize = ChunkSize << GroupLog
	// NodeSize is the size of one parent node in an outboard or a proof:
	// the left and right 32-byte chaining values.
	NodeSize = 64
	// OutboardHeaderSize is the little-endian file size that starts a Bao
	// outboard.
	OutboardHeaderSize = 8
)

// Limits on files and on what a peer may send. Every decoder of peer bytes
// checks against these before allocating.
const (
	// MaxFileSize is the largest file the protocol can name and transfer
	// (1 TiB). It bounds group numbers, proof depth and bitmap size.
	MaxFileSize = 1 << 40
	// MaxGroups is the number of groups in a file of MaxFileSize.
	MaxGroups = MaxFileSize / GroupSize
	// MaxTreeDepth is the most parent nodes between the root and a group
	// (log2 of MaxGroups).
	MaxTreeDepth = 22
	// MaxGroupProofSize is the largest proof of a single group.
	MaxGroupProofSize = MaxTreeDepth * NodeSize
	// MaxRangeGroups is the most groups one GetRange may ask for (16 MiB).
	MaxRangeGroups = 64
	// MaxRangeData is the largest data payload of one range reply.
	MaxRangeData = MaxRangeGroups * GroupSize
	// MaxRangeProof is the largest proof payload of one range reply.
	MaxRangeProof = MaxRangeGroups * MaxGroupProofSize
	// MaxMessageSize caps one length-delimited protobuf message. The
	// largest legitimate messages are a HaveReply bitmap for MaxGroups
	// (512 KiB) and a full BrowseReply.
	MaxMessageSize = 1 << 20
	// MaxNameLen is the longest file or folder name, in bytes.
	MaxNameLen = 255
	// MaxPathLen is the longest path in a Browse request, in bytes.
	MaxPathLen = 4096
	// MaxBrowseEntries is the most entries in one BrowseReply; longer
	// listings are paged with Browse.Offset.
	MaxBrowseEntries = 1024
	// MaxErrorMessageLen is the longest message in an error reply.
	MaxErrorMessageLen = 512
	// MaxLinkLen is the longest kith:// link ParseLink accepts.
	MaxLinkLen = 2048
)

// Download engine defaults (Tuning overrides them).
const (
	// DownloadRangeGroups is the number of groups per request (1 MiB).
	DownloadRangeGroups = 4
	// DownloadWindow is the number of requests in flight per source.
	DownloadWindow = 8
	// DownloadStallTimeout is how long one request may take before its
	// groups are given to other sources.
	DownloadStallTimeout = 20 * time.Second
	// DownloadSourceRefresh is how often a download looks for new sources.
	DownloadSourceRefresh = 10 * time.Second
	// DownloadMaxStalls drops a source after this many stalled requests in
	// a row.
	DownloadMaxStalls = 3
	// DownloadCommitDelay bounds how long a verified group waits to be made
	// durable with others (one fdatasync and one bbolt commit per batch).
	DownloadCommitDelay = 20 * time.Millisecond
	// DownloadSyncInterval is how often a download syncs its partial file
	// and records what survives a power cut (see resume.go).
	DownloadSyncInterval = 2 * time.Second
	// DownloadMaxUnverified bounds the groups written to a partial file but
	// not yet verified (64 MiB), and so the proofs held for them.
	DownloadMaxUnverified = 256
	// DownloadEndgameAfter is how old a request must be before another
	// source is asked for the same groups, once nothing else is left.
	DownloadEndgameAfter = time.Second
	// MaxConcurrentDownloads caps downloads fetching at once; others queue.
	MaxConcurrentDownloads = 8
)

// Server and peer limits.
const (
	// MaxPipelinedRequests is how many requests a server reads ahead of
	// the one it is answering, per stream. A peer may send more; they wait
	// in its socket until the server catches up.
	MaxPipelinedRequests = 16
	// MaxOpenFilesPerStream is how many files one stream keeps open for
	// its requests; more roots than this reopen files as they go.
	MaxOpenFilesPerStream = 4
	// ServeChunkSize is how much file data a server reads and writes at a
	// time, and so the buffer a busy stream holds (4 groups).
	ServeChunkSize = 4 * GroupSize
	// IdleTimeoutSeconds is how long a server keeps a stream on which no
	// byte moves either way.
	IdleTimeoutSeconds = 120
)
