package node

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"kith/share"
)

// Folder downloads and folder links over the API: POST /v1/folders
// (`kith get FOLDERLINK`), GET /v1/folders[/{root}] (progress per file and
// in total), GET /v1/shares/folders (`kith share ls --links`).

func init() {
	apiErrors = append(apiErrors,
		apiErrorCode{share.ErrBadManifest, "bad_manifest", http.StatusUnprocessableEntity},
		apiErrorCode{share.ErrNoManifest, "no_manifest", http.StatusNotFound},
		apiErrorCode{share.ErrNoSuchFolder, "no_such_folder", http.StatusNotFound},
		apiErrorCode{share.ErrIsFolder, "is_folder", http.StatusBadRequest},
		apiErrorCode{share.ErrNotStreamable, "not_streamable", http.StatusNotFound},
	)
}

// manifestTimeout bounds the wait for a folder's manifest in POST
// /v1/folders: the friends are asked once each.
const manifestTimeout = 60 * time.Second

// FolderRequest is the body of POST /v1/folders.
type FolderRequest struct {
	Link string `json:"link"`
	To   string `json:"to,omitempty"`
}

// FolderLinkInfo is a folder of the node's shares with its link.
type FolderLinkInfo struct {
	Share string `json:"share"`
	Path  string `json:"path"`
	Link  string `json:"link"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

func (a *apiServer) folderRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/folders", a.addFolder)
	mux.HandleFunc("GET /v1/folders", a.listFolders)
	mux.HandleFunc("GET /v1/folders/{root}", a.getFolder)
	mux.HandleFunc("DELETE /v1/folders/{root}", a.cancelFolder)
	mux.HandleFunc("GET /v1/shares/folders", a.shareFolders)
	a.streamRoutes(mux)
}

func (a *apiServer) addFolder(w http.ResponseWriter, r *http.Request) {
	var req FolderRequest
	if !readJSON(w, r, &req) {
		return
	}
	link, err := share.ParseLink(req.Link)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), manifestTimeout)
	defer cancel()
	info, err := a.n.share.manager.AddFolder(ctx, link, req.To)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, info)
}

func (a *apiServer) listFolders(w http.ResponseWriter, r *http.Request) {
	out := a.n.share.manager.ListFolders()
	if out == nil {
		out = []share.FolderDownload{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) getFolder(w http.ResponseWriter, r *http.Request) {
	root, err := rootParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	info, err := a.n.share.manager.FolderInfo(root)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (a *apiServer) cancelFolder(w http.ResponseWriter, r *http.Request) {
	root, err := rootParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.n.share.manager.CancelFolder(root); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"cancelled": r.PathValue("root")})
}

func (a *apiServer) shareFolders(w http.ResponseWriter, r *http.Request) {
	dirs := []string{r.URL.Query().Get("dir")}
	if dirs[0] == "" {
		dirs = dirs[:0]
		for _, sh := range a.n.share.index.Shares() {
			dirs = append(dirs, sh.Dir)
		}
	}
	out := []FolderLinkInfo{}
	for _, d := range dirs {
		fs, err := a.n.share.index.Folders(d)
		if err != nil {
			writeError(w, err)
			return
		}
		for _, f := range fs {
			out = append(out, FolderLinkInfo{Share: f.Share, Path: f.Rel, Link: f.Link.String(), Files: f.Files, Bytes: f.Bytes})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// AddFolder fetches a folder's manifest and downloads its files.
func (c *Client) AddFolder(ctx context.Context, req FolderRequest) (share.FolderDownload, error) {
	var out share.FolderDownload
	return out, c.do(ctx, http.MethodPost, "/v1/folders", req, &out)
}

// Folder returns a folder download, with each file's progress.
func (c *Client) Folder(ctx context.Context, root string) (share.FolderDownload, error) {
	var out share.FolderDownload
	return out, c.do(ctx, http.MethodGet, "/v1/folders/"+url.PathEscape(root), nil, &out)
}

// Folders lists the folder downloads.
func (c *Client) Folders(ctx context.Context) ([]share.FolderDownload, error) {
	var out []share.FolderDownload
	return out, c.do(ctx, http.MethodGet, "/v1/folders", nil, &out)
}

// ShareFolders lists the folders of one share (all shares if dir is "")
// with their links.
func (c *Client) ShareFolders(ctx context.Context, dir string) ([]FolderLinkInfo, error) {
	var out []FolderLinkInfo
	return out, c.do(ctx, http.MethodGet, "/v1/shares/folders?dir="+url.QueryEscape(dir), nil, &out)
}

// CancelFolder stops a folder download and forgets it.
func (c *Client) CancelFolder(ctx context.Context, root string) error {
	return c.do(ctx, http.MethodDelete, "/v1/folders/"+url.PathEscape(root), nil, nil)
}
