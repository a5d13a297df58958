package api

import (
	"time"

	"kith/internal/units"
)

// ShareInfo is a shared folder (GET /v1/shares, the share.* events). Its
// JSON keys are its field names, as the API always had them.
type ShareInfo struct {
	// Dir is the folder's absolute path with symlinks resolved.
	Dir string
	// Name is the folder's unique browse name.
	Name string
	// Browsable and Anonymous are the share's flags.
	Browsable, Anonymous bool
	// Files and Bytes count the indexed files as of the last scan.
	Files int
	Bytes int64
	// LastScan is when the last complete scan ended; zero before the first.
	LastScan time.Time
}

// ScanStats is what a scan of shares did (POST /v1/shares/rescan, the
// share.scanned event). Its JSON keys are its field names.
type ScanStats struct {
	// Files is the number of files indexed when the scan ended.
	Files int
	// Hashed counts new or changed files hashed and stored.
	Hashed int
	// Unchanged counts files whose size and mtime matched their record.
	Unchanged int
	// Removed counts records dropped because their file vanished.
	Removed int
	// Skipped counts entries left out of the index; SkippedReasons says
	// why.
	Skipped        int
	SkippedReasons map[string]int
	// BytesHashed is the size of the files hashed.
	BytesHashed int64
	// Duration is how long the scan took (nanoseconds in JSON).
	Duration time.Duration
}

// AddShareRequest is the body of POST /v1/shares.
type AddShareRequest struct {
	Dir       string `json:"dir"`
	Browsable bool   `json:"browsable"`
	Anonymous bool   `json:"anonymous"`
}

// AddShareResponse answers POST /v1/shares: the share after its first scan.
type AddShareResponse struct {
	Share ShareInfo `json:"share"`
	Scan  ScanStats `json:"scan"`
}

// FileInfo is one file of the node's own index (GET /v1/shares/files,
// GET /v1/shares/find).
type FileInfo struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Root    string `json:"root"`
	Link    string `json:"link"`
	Share   string `json:"share"`
	RelPath string `json:"path"`
}

// BrowseEntry is one entry of a friend's browsable shares.
type BrowseEntry struct {
	Name string `json:"name"`
	Dir  bool   `json:"dir"`
	Size int64  `json:"size,omitempty"`
	Root string `json:"root,omitempty"`
	Link string `json:"link,omitempty"`
}

// BrowseListing answers GET /v1/browse/{friend}.
type BrowseListing struct {
	Friend  string        `json:"friend"`
	Path    string        `json:"path"`
	Entries []BrowseEntry `json:"entries"`
	More    bool          `json:"more"`
}

// GetRequest is the body of POST /v1/downloads.
type GetRequest struct {
	Link string `json:"link"`
	To   string `json:"to,omitempty"`
	// Anonymous downloads through tunnels only; friends are not asked.
	Anonymous bool `json:"anonymous,omitempty"`
	// Again downloads the file even if the node already has it (in a share,
	// or downloaded to the same folder): the new copy gets a free name.
	Again bool `json:"again,omitempty"`
}

// DownloadState is where a download is in its life.
type DownloadState string

// Download states.
const (
	StateQueued    DownloadState = "queued"    // waiting for a slot
	StateSearching DownloadState = "searching" // no source yet
	StateActive    DownloadState = "active"    // fetching
	StateVerifying DownloadState = "verifying" // checking the whole file
	StateDone      DownloadState = "done"
	StateFailed    DownloadState = "failed"
	// StatePaused: something on the daemon's machine stops the download
	// (a full disk, its folder removed); Reason says what.
	StatePaused DownloadState = "paused"
	// StateNoSource: no source for a while; Reason says since when. The
	// download keeps looking.
	StateNoSource DownloadState = "no-source"
)

// UnknownSize is DownloadInfo.Size while the size is not known.
const UnknownSize = -1

// DownloadInfo is a download (GET /v1/downloads, the download.* events).
type DownloadInfo struct {
	Root string `json:"root"`
	Name string `json:"name"`
	// Size is the file size in bytes, UnknownSize if not known yet. Until
	// SizeProven it is only what the link said.
	Size       int64         `json:"size"`
	SizeProven bool          `json:"size_proven"`
	Dir        string        `json:"dir"`
	State      DownloadState `json:"state"`
	// Reason says why a download is paused or without a source, and what
	// would make it go on.
	Reason   string       `json:"reason,omitempty"`
	Path     string       `json:"path,omitempty"` // final path, once done
	Error    string       `json:"error,omitempty"`
	Groups   int64        `json:"groups"`
	Verified int64        `json:"verified"` // groups verified and durably recorded
	Received int64        `json:"received"` // groups verified and written
	Done     int64        `json:"bytes_done"`
	Rate     float64      `json:"rate"`
	Sources  []SourceInfo `json:"sources"`
	Added    time.Time    `json:"added"`
	Finished time.Time    `json:"finished,omitzero"`
	// Anonymous is set for a download through anonymous tunnels only
	// (GetRequest.Anonymous).
	Anonymous bool `json:"anonymous,omitempty"`
	// Counters of this run of the daemon, for tests and diagnostics.
	ResumedGroups   int64 `json:"resumed_groups"`
	FetchedGroups   int64 `json:"fetched_groups"`
	DuplicateGroups int64 `json:"duplicate_groups"`
	BadRanges       int64 `json:"bad_ranges"`
}

// SourceInfo is a source of a running download.
type SourceInfo struct {
	Name    string  `json:"name"`
	Bytes   int64   `json:"bytes"`
	Rate    float64 `json:"rate"` // bytes per second, recent
	Dropped string  `json:"dropped,omitempty"`
}

// CancelledDownload answers DELETE /v1/downloads/{root}.
type CancelledDownload struct {
	Cancelled string `json:"cancelled"` // the root, in hex
}

// Searches (GET /v1/search).
const (
	// DefaultSearchTimeout is how long a search listens for results when
	// the request names no timeout; MaxSearchTimeout bounds any.
	DefaultSearchTimeout = 5 * time.Second
	MaxSearchTimeout     = 2 * time.Minute
)

// SearchHit is one line of GET /v1/search: a file found through the
// friends' routers. Sources counts the answers with this root so far; a
// root answered again comes again with the higher count.
type SearchHit struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Root    string `json:"root"`
	Link    string `json:"link"`
	Sources int    `json:"sources"`
}

// FormatSize prints a byte count for people, in binary units: "512 B",
// "1.5 KiB", "200.0 MiB".
func FormatSize(n int64) string { return units.FormatSize(n) }
