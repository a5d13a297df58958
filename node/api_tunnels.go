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

	"kith/share"
	"kith/tunnels"
)

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
// JSON SearchHits until the timeout ends.
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
	timeout := DefaultSearchTimeout
	if t := r.URL.Query().Get("timeout"); t != "" {
		if timeout, err = time.ParseDuration(t); err != nil || timeout <= 0 || timeout > MaxSearchTimeout {
			writeError(w, fmt.Errorf("%w: timeout must be a duration up to %v", ErrBadRequest, MaxSearchTimeout))
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
		enc.Encode(SearchHit{
			Name: res.Name, Size: res.Size, Root: hex.EncodeToString(res.Root[:]),
			Link:    share.Link{Root: res.Root, Name: res.Name, Size: res.Size}.String(),
			Sources: seen[res.Root],
		})
		fl.Flush()
	}
}
