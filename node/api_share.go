package node

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"kith/node/api"
	"kith/share"
)

// ErrAlreadyHave means a download was asked for a file the node already
// has: in one of its shares, or downloaded to the same folder before.
// GetRequest.Again downloads it all the same.
var ErrAlreadyHave = api.ErrAlreadyHave

func (a *apiServer) shareRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/shares", a.listShares)
	mux.HandleFunc("POST /v1/shares", a.addShare)
	mux.HandleFunc("DELETE /v1/shares", a.removeShare)
	mux.HandleFunc("POST /v1/shares/rescan", a.rescan)
	mux.HandleFunc("GET /v1/shares/files", a.shareFiles)
	mux.HandleFunc("GET /v1/shares/find", a.findFiles)
	mux.HandleFunc("GET /v1/browse/{friend}", a.browse)
	mux.HandleFunc("GET /v1/downloads", a.listDownloads)
	mux.HandleFunc("POST /v1/downloads", a.addDownload)
	mux.HandleFunc("GET /v1/downloads/{root}", a.getDownload)
	mux.HandleFunc("DELETE /v1/downloads/{root}", a.cancelDownload)
}

func (a *apiServer) listShares(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, apiShares(a.n.share.index.Shares()))
}

func (a *apiServer) addShare(w http.ResponseWriter, r *http.Request) {
	var req api.AddShareRequest
	if !readJSON(w, r, &req) {
		return
	}
	info, err := a.n.share.index.AddShare(req.Dir, share.ShareFlags{Browsable: req.Browsable, Anonymous: req.Anonymous})
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := a.n.share.index.RescanShare(r.Context(), info.Dir)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, s := range a.n.share.index.Shares() {
		if s.Dir == info.Dir {
			info = s
		}
	}
	a.n.events.Publish(api.EventShareAdded, apiShare(info))
	writeJSON(w, http.StatusCreated, api.AddShareResponse{Share: apiShare(info), Scan: apiScan(st)})
}

func (a *apiServer) removeShare(w http.ResponseWriter, r *http.Request) {
	info, err := a.n.share.index.RemoveShare(r.URL.Query().Get("dir"))
	if err != nil {
		writeError(w, err)
		return
	}
	a.n.events.Publish(api.EventShareRemoved, apiShare(info))
	writeJSON(w, http.StatusOK, apiShare(info))
}

func (a *apiServer) rescan(w http.ResponseWriter, r *http.Request) {
	st, err := a.n.share.index.Rescan(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiScan(st))
}

func fileInfos(fs []share.FoundFile) []api.FileInfo {
	out := make([]api.FileInfo, 0, len(fs))
	for _, f := range fs {
		out = append(out, api.FileInfo{
			Name: f.Name, Size: f.Size, Root: hex.EncodeToString(f.Root[:]),
			Link:  share.Link{Root: f.Root, Name: f.Name, Size: f.Size}.String(),
			Share: f.Share, RelPath: f.RelPath,
		})
	}
	return out
}

func (a *apiServer) shareFiles(w http.ResponseWriter, r *http.Request) {
	var dirs []string
	if dir := r.URL.Query().Get("dir"); dir != "" {
		dirs = []string{dir}
	} else {
		for _, s := range a.n.share.index.Shares() {
			dirs = append(dirs, s.Dir)
		}
	}
	var all []share.FoundFile
	for _, dir := range dirs {
		fs, err := a.n.share.index.Files(dir)
		if err != nil {
			writeError(w, err)
			return
		}
		all = append(all, fs...)
	}
	writeJSON(w, http.StatusOK, fileInfos(all))
}

func (a *apiServer) findFiles(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		writeError(w, fmt.Errorf("%w: empty query", ErrBadRequest))
		return
	}
	fs, err := a.n.share.index.Find(q, share.ScopeLocal, 200)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, fileInfos(fs))
}

func (a *apiServer) browse(w http.ResponseWriter, r *http.Request) {
	offset := 0
	if o := r.URL.Query().Get("offset"); o != "" {
		var err error
		if offset, err = strconv.Atoi(o); err != nil || offset < 0 {
			writeError(w, fmt.Errorf("%w: bad offset", ErrBadRequest))
			return
		}
	}
	path := strings.Trim(r.URL.Query().Get("path"), "/")
	out, err := a.n.share.browse(r.Context(), r.PathValue("friend"), path, offset)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) listDownloads(w http.ResponseWriter, r *http.Request) {
	out := []api.DownloadInfo{}
	for _, d := range a.n.share.manager.List() {
		out = append(out, apiDownload(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) addDownload(w http.ResponseWriter, r *http.Request) {
	var req api.GetRequest
	if !readJSON(w, r, &req) {
		return
	}
	link, err := share.ParseLink(req.Link)
	if err != nil {
		writeError(w, err)
		return
	}
	if !req.Again {
		if where, ok := a.n.share.alreadyHave(link.Root, req.To); ok {
			writeError(w, fmt.Errorf("%w: %s; `kith get --again` downloads another copy", ErrAlreadyHave, where))
			return
		}
	}
	info, err := a.n.AddDownload(link, req.To, req.Anonymous)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiDownload(info))
}

func rootParam(r *http.Request) ([32]byte, error) {
	l, err := share.ParseLink(r.PathValue("root"))
	if err != nil {
		return [32]byte{}, err
	}
	return l.Root, nil
}

func (a *apiServer) getDownload(w http.ResponseWriter, r *http.Request) {
	root, err := rootParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	info, ok := a.n.share.manager.Info(root)
	if !ok {
		writeError(w, fmt.Errorf("%w: %x", share.ErrNoSuchDownload, root))
		return
	}
	writeJSON(w, http.StatusOK, apiDownload(info))
}

func (a *apiServer) cancelDownload(w http.ResponseWriter, r *http.Request) {
	root, err := rootParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.n.share.manager.Cancel(root); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CancelledDownload{Cancelled: hex.EncodeToString(root[:])})
}
