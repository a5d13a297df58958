package node

import (
	"context"
	"net/http"
	"time"

	"kith/node/api"
	"kith/share"
)

// Folder downloads and folder links over the API: POST /v1/folders
// (`kith get FOLDERLINK`), GET /v1/folders[/{root}] (progress per file and
// in total), GET /v1/shares/folders (`kith share ls --links`).

func init() {
	apiErrors = append(apiErrors,
		apiErrorCode{share.ErrBadManifest, "bad_manifest"},
		apiErrorCode{share.ErrNoManifest, "no_manifest"},
		apiErrorCode{share.ErrNoSuchFolder, "no_such_folder"},
		apiErrorCode{share.ErrIsFolder, "is_folder"},
		apiErrorCode{share.ErrNotStreamable, "not_streamable"},
	)
}

// manifestTimeout bounds the wait for a folder's manifest in POST
// /v1/folders: the friends are asked once each.
const manifestTimeout = 60 * time.Second

func (a *apiServer) folderRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/folders", a.addFolder)
	mux.HandleFunc("GET /v1/folders", a.listFolders)
	mux.HandleFunc("GET /v1/folders/{root}", a.getFolder)
	mux.HandleFunc("DELETE /v1/folders/{root}", a.cancelFolder)
	mux.HandleFunc("GET /v1/shares/folders", a.shareFolders)
	a.streamRoutes(mux)
}

func (a *apiServer) addFolder(w http.ResponseWriter, r *http.Request) {
	var req api.FolderRequest
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
	info, err := a.n.share.manager.AddFolder(ctx, link, req.To, share.AddOptions{Anonymous: req.Anonymous})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiFolder(info))
}

func (a *apiServer) listFolders(w http.ResponseWriter, r *http.Request) {
	out := []api.FolderDownload{}
	for _, f := range a.n.share.manager.ListFolders() {
		out = append(out, apiFolder(f))
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
	writeJSON(w, http.StatusOK, apiFolder(info))
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
	writeJSON(w, http.StatusOK, api.CancelledFolder{Cancelled: r.PathValue("root")})
}

func (a *apiServer) shareFolders(w http.ResponseWriter, r *http.Request) {
	dirs := []string{r.URL.Query().Get("dir")}
	if dirs[0] == "" {
		dirs = dirs[:0]
		for _, sh := range a.n.share.index.Shares() {
			dirs = append(dirs, sh.Dir)
		}
	}
	out := []api.FolderLinkInfo{}
	for _, d := range dirs {
		fs, err := a.n.share.index.Folders(d)
		if err != nil {
			writeError(w, err)
			return
		}
		for _, f := range fs {
			out = append(out, api.FolderLinkInfo{Share: f.Share, Path: f.Rel, Link: f.Link.String(), Files: f.Files, Bytes: f.Bytes})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// apiFolder is a folder download as the API shows it.
func apiFolder(f share.FolderDownload) api.FolderDownload {
	out := api.FolderDownload{
		Root: f.Root, Name: f.Name, Dir: f.Dir, State: api.DownloadState(f.State), Error: f.Error,
		Size: f.Size, Done: f.Done, FilesDone: f.FilesDone, Files: make([]api.FolderFile, 0, len(f.Files)),
		Added: f.Added, Finished: f.Finished, Anonymous: f.Anonymous,
	}
	for _, ff := range f.Files {
		out.Files = append(out.Files, api.FolderFile{Path: ff.Path, Root: ff.Root, Size: ff.Size, State: api.DownloadState(ff.State), Done: ff.Done, Error: ff.Error})
	}
	return out
}
