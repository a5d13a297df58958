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
	// DownloadWindow is the most requests in flight per source, for a
	// source fast enough to need them (DownloadWindowTime); each has a
	// worker and, once it has asked for anything, a reply buffer. With 16
	// the holder of a tunnel of three 50 ms hops at 500 Mbit/s ran dry
	// while the hops' BBR was in its start-up; 32 moved it 7% faster
	// (wan-bench, BENCHMARKS.md).
	DownloadWindow = 32
	// DownloadMaxSources caps the sources attached to one download at
	// once; more that are found are closed unused. Each attached source
	// costs up to DownloadBaseWindow reply buffers of 1 MiB (more only at
	// a rate that needs them), so friends offering a file cannot make a
	// download hold more than about 128 MiB of them by their number.
	DownloadMaxSources = 16
	// DownloadBaseWindow is the requests in flight per source until it
	// has been attached a second, and for any source slower than
	// DownloadBaseWindow ranges per DownloadWindowTime.
	DownloadBaseWindow = 8
	// DownloadWindowTime is what a source's window holds at its rate: a
	// source sending 46 MiB/s gets 32 requests of 1 MiB in flight. Over
	// a 50 ms path of 500 Mbit/s, 16 moved 47.6 MiB/s against 42.5 for 8
	// (wan-bench; with 8 the sender runs dry often enough for BBR to stay
	// in its start-up); over a tunnel of three such hops (150 ms), 700 ms
	// and 32 moved 7% more than 350 ms and 16, and 350 ms beyond the
	// path's quickest answer no more than 350 ms. Bounding the window by
	// time bounds what a streaming reader's seek waits behind at one
	// source: at most this, at a fast source, and DownloadBaseWindow
	// ranges at a slow one (2 s at 4 MiB/s, as before).
	DownloadWindowTime = 700 * time.Millisecond
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
	// and records what survives a power cut (see resume.go): what a power
	// cut can cost (a kill -9 costs nothing). Each sync makes the kernel
	// write the file back at once, on the cores and the disk the transfer
	// is using; left alone it writes back only data older than 30 s
	// (dirty_expire_centisecs) or past its dirty threshold, so a download
	// shorter than this interval is written back after it ends. 2 s cost
	// a 1 GiB download between daemons about 6% (143 against 151 MiB/s
	// with 30 s, three interleaved pairs, issue 14).
	DownloadSyncInterval = 10 * time.Second
	// DownloadMaxUnverified bounds the groups written to a partial file but
	// not yet verified (64 MiB), and so the proofs held for them.
	DownloadMaxUnverified = 256
	// DownloadEndgameAfter is how old a request must be before another
	// source is asked for the same groups, once nothing else is left.
	DownloadEndgameAfter = time.Second
	// MaxConcurrentDownloads caps downloads fetching at once; others queue.
	MaxConcurrentDownloads = 8
	// DownloadBusyWait is how long a worker waits before it asks again a
	// source that answered CodeBusy (it had no memory for the range).
	DownloadBusyWait = 500 * time.Millisecond
	// DownloadNoSourceAfter is how long a download may look for sources
	// and find none before its state says so (StateNoSource, with the
	// reason): long enough for a friend's node to restart or a tunnel
	// search to answer (at most 10 s each), short enough that a user
	// watching `kith downloads` is told within a couple of minutes. It
	// goes on looking, every DownloadSourceRefresh instead of every
	// second, so a download left without a source costs each friend one
	// Have per DownloadSourceRefresh.
	DownloadNoSourceAfter = 2 * time.Minute
	// DownloadLocalCheck is how often a running download looks at its
	// folders and partial file (removed? replaced?) and, while paused,
	// whether what paused it was put right: two stat calls, or a statfs.
	// It bounds how long kith writes into a folder that was deleted
	// before it says so.
	DownloadLocalCheck = time.Second
	// DownloadResumeSpace is the free space at which a download paused for
	// a full disk goes on (or all it still has to write, if that is less):
	// enough for 64 MiB of groups, so that it does not pause again at
	// once, and little enough to be found on a nearly full disk.
	DownloadResumeSpace = 64 << 20
	// WholeCheckWorkers caps the goroutines that hash a finished file
	// before it is placed (one per core, at most this many): the check
	// runs once the transfer is over, when the cores are free, and its
	// time is the user's wait between the last byte and "done".
	WholeCheckWorkers = 4
	// wholeCheckWindow is how many groups each of those goroutines hashes
	// per round (16 MiB); a round's nodes are then merged in order.
	wholeCheckWindow = 64
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
	// time (2 groups, 512 KiB).
	ServeChunkSize = 2 * GroupSize
	// ServeChunks is how many chunks a busy stream holds: one being
	// written while the next is read from the file, so that the stream
	// always has data to send (see sendQueue). Two halves of what one
	// 1 MiB chunk was: the memory per stream is unchanged.
	ServeChunks = 2
	// IdleTimeoutSeconds is how long a server keeps a stream on which no
	// byte moves either way.
	IdleTimeoutSeconds = 120
)

// What a misbehaving friend may cost a server: memory per stream, per
// friend and in all, and requests per second. docs/ARCHITECTURE.md
// ("Security: share") has the figures measured under attack.
const (
	// MaxRequestSize caps one request frame a server reads (5 KiB). The
	// largest request is a Browse with a path of MaxPathLen bytes and some
	// 40 bytes of framing. A peer that announces a longer frame is cut off
	// before its body is read, and one that sends a frame slowly holds no
	// more than it sent (the buffer grows as bytes arrive).
	MaxRequestSize = 5 << 10
	// ServerFrameTimeout bounds the time from a request frame's first byte
	// to its last. A request is one to three packets; a peer that dribbles
	// one is cut off (the stream is reset) instead of holding the stream.
	ServerFrameTimeout = 10 * time.Second
	// ServerReadBuffer is a served stream's read buffer: requests are
	// small, so a full one holds a few of them.
	ServerReadBuffer = 4 << 10
	// ServerWriteBuffer is a served stream's write buffer, allocated at the
	// first reply. Range data bypasses it (it is written from the chunk),
	// so it only gathers headers, proofs and listings.
	ServerWriteBuffer = 16 << 10
	// ServeStreamMemory is what a served stream may buffer besides its
	// data chunk: the read buffer, the request being read, the pipelined
	// requests and the write buffer (105 KiB). The server charges it to
	// the stream's resource scope when the stream starts.
	ServeStreamMemory = ServerReadBuffer + MaxRequestSize + MaxPipelinedRequests*MaxRequestSize + ServerWriteBuffer
	// MaxServeStreamMemory is the most one served stream buffers: the above
	// and, while it answers GetRanges, ServeChunks chunks of
	// ServeChunkSize, each charged to the stream's scope while it is read,
	// queued or written (1.1 MiB).
	MaxServeStreamMemory = ServeStreamMemory + ServeChunks*ServeChunkSize
	// MaxShareStreamsPerFriend caps the share streams one friend may have
	// open with us at once; more are reset on arrival. A friend's node
	// uses one per download it runs from us (at most
	// MaxConcurrentDownloads) and short-lived ones to browse and to ask
	// Have. The node also sets it as libp2p's per-protocol-per-peer stream
	// limit for ProtocolID.
	MaxShareStreamsPerFriend = 16
	// MaxShareFriendMemory is the most one friend's share streams buffer
	// in all (17.6 MiB): MaxShareStreamsPerFriend streams of
	// MaxServeStreamMemory.
	MaxShareFriendMemory = MaxShareStreamsPerFriend * MaxServeStreamMemory
	// MaxShareStreams caps the share streams of all friends together.
	MaxShareStreams = 128
	// MaxShareMemory is the most all served friend streams buffer together
	// (141 MiB), and it is reached only while every one of them is in the
	// middle of writing a range to a friend that does not read it.
	MaxShareMemory = MaxShareStreams * MaxServeStreamMemory
)

// Request rates per friend, over all its streams (tunnel sessions, which
// name no friend, each have rates of their own). A request beyond its rate
// waits for its turn: it is slowed, never dropped, and the requests behind
// it wait in the stream, so a flood costs the server at most the rate.
const (
	// BrowseRate is the Browse requests a friend is answered per second.
	// Listing a folder costs time in its number of entries, whatever the
	// page; `kith browse` asks one page of MaxBrowseEntries at a time.
	BrowseRate = 10
	// BrowseBurst is how many Browse requests a friend may send at once
	// (32 pages: 32k entries) before BrowseRate applies.
	BrowseBurst = 32
	// HaveRate is the Have requests (and requests of unknown types) a
	// friend is answered per second. Each is an index lookup that copies
	// the file's outboard; a download asks once per source search.
	HaveRate = 50
	// HaveBurst is how many Have requests a friend may send at once, so
	// that a friend starting many downloads is not slowed.
	HaveBurst = 100
	// RangeRate is the GetRange requests a friend is answered per second:
	// at the download engine's 1 MiB ranges, 2 GiB/s, more than a friend
	// link carries; it bounds a flood of one-group requests.
	RangeRate = 2048
	// RangeBurst is how many GetRange requests a friend may send at once.
	RangeBurst = 512
	// peerRatesKeep is how long a friend's rates outlive its last stream,
	// so that closing and opening streams does not refill them (each
	// bucket refills in at most a few seconds).
	peerRatesKeep = time.Minute
)

// Folders: what a manifest from a peer may hold. A manifest is fetched
// whole into memory and verified against its root before it is decoded,
// so these bound the memory and the disk a hostile folder link costs.
const (
	// MaxManifestSize is the largest manifest encoding a downloader
	// fetches (4 MiB, 16 groups): about 40,000 files with long paths.
	// A source that claims more for a folder root is not asked for it.
	MaxManifestSize = 4 << 20
	// MaxManifestFiles is the most files one folder may list: enough for
	// a photo library, and it bounds the downloads a folder queues.
	MaxManifestFiles = 65536
	// MaxManifestDepth is the most folders a path of a manifest may go
	// down (a/b/c is depth 3). Deeper trees are refused: real folders
	// are shallower, and each level is a directory created on disk.
	MaxManifestDepth = 32
	// MaxFolderSize is the most bytes all the files of one folder may
	// add up to: what one folder link may make a node reserve on disk
	// (each file's size is still proven before its space is reserved).
	MaxFolderSize = 16 << 40
	// folderEncodings is how many folder manifests the index keeps encoded
	// for peers (each at most MaxManifestSize: 16 MiB at most); others
	// are made again from the index when asked for.
	folderEncodings = 4
	// folderPoll is how often a folder download looks at its files'
	// downloads (those not done), to queue more and place copies.
	folderPoll = 250 * time.Millisecond
	// maxFolderActive is how many of a folder's files are queued or
	// downloading at once (twice MaxConcurrentDownloads, so a slot that
	// frees finds the next file queued): a folder of MaxManifestFiles
	// files costs that many records and goroutines, not 65,536.
	maxFolderActive = 2 * MaxConcurrentDownloads
)

// Swarming and streaming (swarm.go, stream_reader.go).
const (
	// MaxSwarmOutboard is the largest partial outboard a download keeps in
	// memory to serve its verified groups while it runs (4 MiB: files up
	// to 16 GiB). Larger downloads are not served until done; so swarming
	// costs at most MaxConcurrentDownloads times this.
	MaxSwarmOutboard = 4 << 20
	// SwarmHaveRefresh is how often a download asks a source that holds
	// part of the file (another downloader) what it holds now: one Have
	// every 250 ms per such source (4/s, well under HaveRate), so that
	// what it gets is fetched from it rather than from the owner.
	SwarmHaveRefresh = 250 * time.Millisecond
	// MaxSeeds is how many finished downloads a node goes on serving
	// (from where they were placed, until it stops): each keeps its
	// outboard in memory, at most MaxSwarmOutboard.
	MaxSeeds = MaxConcurrentDownloads
	// SwarmSourceRefresh is how often a running download looks for new
	// sources while swarming is on (DownloadSourceRefresh otherwise):
	// friends who start the same download a moment later are sources
	// within 2 s. It costs each friend without the file one Have (on a
	// short stream) per running download every 2 s.
	SwarmSourceRefresh = 2 * time.Second
	// swarmOwnerWindow is how many requests a download keeps in flight at
	// a source that holds the whole file while other downloaders are
	// sources too (instead of Tuning.Window): groups in flight are not in
	// the download's bitmap, so the other downloaders may ask the owner
	// for them as well; two ranges keep the owner busy and that overlap
	// small.
	swarmOwnerWindow = 2
	// swarmOwnerEndgame is how long a range must have been in flight at
	// another downloader before the end game asks a source that holds the
	// whole file (the owner) for it too (DownloadEndgameAfter otherwise):
	// downloaders serving each other are slower than the owner's link is
	// precious.
	swarmOwnerEndgame = 4 * time.Second
	// ownerYield is how long a complete source's worker waits before it
	// takes groups that another downloader (a partial source) holds too:
	// long enough for that downloader to serve them, short enough that a
	// slow one does not hold the download back.
	ownerYield = 300 * time.Millisecond
	// availRefresh is how often the scheduler counts which sources hold
	// each group, for rarest first (a pass over every source's bitmap).
	availRefresh = 100 * time.Millisecond
	// maxRarestGroups is the largest file, in groups, scheduled rarest
	// first (4 GiB): each pick scans the groups, a few times per MiB
	// received; larger files go lowest first (and are still served).
	maxRarestGroups = 1 << 14
	// StreamCritical is the groups from a stream reader's position that
	// are fetched before anything else (1 MiB): what a player needs now.
	StreamCritical = 4
	// StreamReadAhead is the groups behind the critical window fetched
	// next (16 MiB), so playback does not wait at every MiB.
	StreamReadAhead = 64
	// StreamTail is the groups at the end of the file fetched early
	// (1 MiB): formats such as MP4 may keep their index there.
	StreamTail = 4
)

// LiarRetryAfter is how long a download leaves alone a source that sent
// data that does not match the root before it may ask it again. An honest
// friend whose file was rewritten in place while its server read it sends
// bad ranges once and, after a rescan, has the file again; a real liar
// costs at most one bad range (and its connection's bandwidth for it) per
// LiarRetryAfter per download, while the other sources carry on.
const LiarRetryAfter = 30 * time.Second
