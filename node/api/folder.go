package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Folders (kith://folder/ links) and streams (a URL for a media player).

// Sentinel errors of folders and streams (codes in errors.go).
var (
	// ErrBadManifest: a folder's manifest breaks the rules (a path that
	// leaves the folder, a name twice, too many files...): the whole
	// folder is refused and nothing of it written.
	ErrBadManifest = errors.New("bad folder manifest")
	// ErrNoManifest: no friend (or tunnel) could give the folder's
	// manifest.
	ErrNoManifest = errors.New("no source has the folder's manifest")
	// ErrNoSuchFolder: no folder download has that root.
	ErrNoSuchFolder = errors.New("no such folder download")
	// ErrIsFolder: a folder link where a file link is wanted.
	ErrIsFolder = errors.New("link names a folder")
	// ErrNotStreamable: the file is neither being downloaded, nor
	// downloaded, nor shared.
	ErrNotStreamable = errors.New("file is not being downloaded")
)

// IsFolderLink reports whether s is a kith://folder/ link (it is not
// checked further: the daemon parses it).
func IsFolderLink(s string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "kith://folder/")
}

// FolderRequest is the body of POST /v1/folders.
type FolderRequest struct {
	Link string `json:"link"`
	To   string `json:"to,omitempty"`
	// Anonymous fetches the manifest and every file through anonymous
	// tunnels only.
	Anonymous bool `json:"anonymous,omitempty"`
}

// FolderDownload is a folder download: POST /v1/folders, GET
// /v1/folders[/{root}].
type FolderDownload struct {
	Root string `json:"root"`
	Name string `json:"name"`
	// Dir is the folder made for the download, where its files go.
	Dir   string        `json:"dir"`
	State DownloadState `json:"state"`
	Error string        `json:"error,omitempty"`
	// Size and Done are the bytes of all files, and of those verified.
	Size      int64        `json:"size"`
	Done      int64        `json:"bytes_done"`
	FilesDone int          `json:"files_done"`
	Files     []FolderFile `json:"files"`
	Added     time.Time    `json:"added"`
	Finished  time.Time    `json:"finished,omitzero"`
	Anonymous bool         `json:"anonymous,omitempty"`
}

// FolderFile is one file of a folder download.
type FolderFile struct {
	// Path is relative to the folder, with "/" separators.
	Path  string        `json:"path"`
	Root  string        `json:"root"`
	Size  int64         `json:"size"`
	State DownloadState `json:"state"`
	Done  int64         `json:"bytes_done"`
	Error string        `json:"error,omitempty"`
}

// FolderLinkInfo is a folder of the node's shares with its link (GET
// /v1/shares/folders).
type FolderLinkInfo struct {
	Share string `json:"share"`
	// Path is the folder's path in the share, "" for the share itself.
	Path  string `json:"path"`
	Link  string `json:"link"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// CancelledFolder answers DELETE /v1/folders/{root}.
type CancelledFolder struct {
	Cancelled string `json:"cancelled"`
}

// StreamRequest is the body of POST /v1/streams.
type StreamRequest struct {
	Link string `json:"link"`
	// Anonymous downloads through tunnels only, if the file is not being
	// downloaded already.
	Anonymous bool `json:"anonymous,omitempty"`
}

// StreamInfo answers POST /v1/streams.
type StreamInfo struct {
	Root string `json:"root"`
	Name string `json:"name"`
	// URL is where a media player reads the file: loopback only, with a
	// token.
	URL string `json:"url"`
}

// AddFolder fetches a folder's manifest and downloads its files.
func (c *Client) AddFolder(ctx context.Context, req FolderRequest) (FolderDownload, error) {
	var out FolderDownload
	return out, c.do(ctx, http.MethodPost, "/v1/folders", req, &out)
}

// Folder returns a folder download, with each file's progress.
func (c *Client) Folder(ctx context.Context, root string) (FolderDownload, error) {
	var out FolderDownload
	return out, c.do(ctx, http.MethodGet, "/v1/folders/"+url.PathEscape(root), nil, &out)
}

// Folders lists the folder downloads, newest first.
func (c *Client) Folders(ctx context.Context) ([]FolderDownload, error) {
	var out []FolderDownload
	return out, c.do(ctx, http.MethodGet, "/v1/folders", nil, &out)
}

// CancelFolder stops a folder download and forgets it; its files that are
// done stay.
func (c *Client) CancelFolder(ctx context.Context, root string) (CancelledFolder, error) {
	var out CancelledFolder
	return out, c.do(ctx, http.MethodDelete, "/v1/folders/"+url.PathEscape(root), nil, &out)
}

// ShareFolders lists the folders of one share (all shares if dir is "")
// with their links.
func (c *Client) ShareFolders(ctx context.Context, dir string) ([]FolderLinkInfo, error) {
	var out []FolderLinkInfo
	return out, c.do(ctx, http.MethodGet, "/v1/shares/folders?dir="+url.QueryEscape(dir), nil, &out)
}

// StreamURL asks the daemon for a URL a media player can open for link,
// starting its download if needed.
func (c *Client) StreamURL(ctx context.Context, req StreamRequest) (StreamInfo, error) {
	var out StreamInfo
	return out, c.do(ctx, http.MethodPost, "/v1/streams", req, &out)
}
