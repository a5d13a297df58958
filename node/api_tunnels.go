package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"kith/node/api"
	"kith/share"
	"kith/tunnels"
)

func (a *apiServer) tunnelRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/search", a.search)
}

// searchQuery turns q into a router query: a link or bare root searches by
// root (as its SearchHash), anything else by keywords.
func searchQuery(q string) (tunnels.Query, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return tunnels.Query{}, fmt.Errorf("%w: empty query", ErrBadRequest)
	}
	if l, err := share.ParseLink(q); err == nil {
		return tunnels.Query{RootHash: tunnels.SearchHash(l.Root)}, nil
	}
	if len(q) > tunnels.MaxKeywordsLen {
		return tunnels.Query{}, fmt.Errorf("%w: %d bytes", share.ErrBadQuery, len(q))
	}
	return tunnels.Query{Keywords: q}, nil
}

// search streams the results of an anonymous search as newline-delimited
// JSON api.SearchHits until the timeout ends.
func (a *apiServer) search(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("streaming unsupported"))
		return
	}
	q, err := searchQuery(r.URL.Query().Get("q"))
	if err != nil {
		writeError(w, err)
		return
	}
	timeout := api.DefaultSearchTimeout
	if t := r.URL.Query().Get("timeout"); t != "" {
		if timeout, err = time.ParseDuration(t); err != nil || timeout <= 0 || timeout > api.MaxSearchTimeout {
			writeError(w, fmt.Errorf("%w: timeout must be a duration up to %v", ErrBadRequest, api.MaxSearchTimeout))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	go func() {
		select {
		case <-a.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	results, err := a.n.Search(ctx, q)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	seen := make(map[[32]byte]int)
	for res := range results {
		seen[res.Root]++
		enc.Encode(api.SearchHit{
			Name: res.Name, Size: res.Size, Root: hex.EncodeToString(res.Root[:]),
			Link:    share.Link{Root: res.Root, Name: res.Name, Size: res.Size}.String(),
			Sources: seen[res.Root],
		})
		fl.Flush()
	}
}
