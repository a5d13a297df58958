package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Shares lists the node's shared folders.
func (c *Client) Shares(ctx context.Context) ([]ShareInfo, error) {
	var out []ShareInfo
	return out, c.do(ctx, http.MethodGet, "/v1/shares", nil, &out)
}

// AddShare shares a folder (an absolute path on the daemon's machine) and
// waits for its first scan.
func (c *Client) AddShare(ctx context.Context, req AddShareRequest) (AddShareResponse, error) {
	var out AddShareResponse
	return out, c.do(ctx, http.MethodPost, "/v1/shares", req, &out)
}

// RemoveShare stops sharing a folder.
func (c *Client) RemoveShare(ctx context.Context, dir string) (ShareInfo, error) {
	var out ShareInfo
	return out, c.do(ctx, http.MethodDelete, "/v1/shares?dir="+url.QueryEscape(dir), nil, &out)
}

// Rescan rescans every share and waits for it.
func (c *Client) Rescan(ctx context.Context) (ScanStats, error) {
	var out ScanStats
	return out, c.do(ctx, http.MethodPost, "/v1/shares/rescan", nil, &out)
}

// ShareFiles lists the files of one share, or of all shares if dir is "".
func (c *Client) ShareFiles(ctx context.Context, dir string) ([]FileInfo, error) {
	var out []FileInfo
	return out, c.do(ctx, http.MethodGet, "/v1/shares/files?dir="+url.QueryEscape(dir), nil, &out)
}

// Find searches the node's own index.
func (c *Client) Find(ctx context.Context, query string) ([]FileInfo, error) {
	var out []FileInfo
	return out, c.do(ctx, http.MethodGet, "/v1/shares/find?q="+url.QueryEscape(query), nil, &out)
}

// Browse lists a friend's browsable shares at path, from entry offset on.
func (c *Client) Browse(ctx context.Context, friend, path string, offset int) (BrowseListing, error) {
	var out BrowseListing
	q := url.Values{"path": {path}, "offset": {strconv.Itoa(offset)}}
	return out, c.do(ctx, http.MethodGet, "/v1/browse/"+url.PathEscape(friend)+"?"+q.Encode(), nil, &out)
}

// Downloads lists the downloads.
func (c *Client) Downloads(ctx context.Context) ([]DownloadInfo, error) {
	var out []DownloadInfo
	return out, c.do(ctx, http.MethodGet, "/v1/downloads", nil, &out)
}

// Get queues a download of a link or root into dir ("" for the default).
func (c *Client) Get(ctx context.Context, link, dir string) (DownloadInfo, error) {
	return c.AddDownload(ctx, GetRequest{Link: link, To: dir})
}

// AddDownload queues a download as req says (Anonymous: tunnels only).
func (c *Client) AddDownload(ctx context.Context, req GetRequest) (DownloadInfo, error) {
	var out DownloadInfo
	return out, c.do(ctx, http.MethodPost, "/v1/downloads", req, &out)
}

// Download returns one download's state.
func (c *Client) Download(ctx context.Context, root string) (DownloadInfo, error) {
	var out DownloadInfo
	return out, c.do(ctx, http.MethodGet, "/v1/downloads/"+url.PathEscape(root), nil, &out)
}

// CancelDownload stops and forgets a download.
func (c *Client) CancelDownload(ctx context.Context, root string) (CancelledDownload, error) {
	var out CancelledDownload
	return out, c.do(ctx, http.MethodDelete, "/v1/downloads/"+url.PathEscape(root), nil, &out)
}

// Search runs an anonymous search through the friends' routers for
// timeout (0: DefaultSearchTimeout), calling fn for each hit as it
// arrives, until the search ends, ctx ends or fn returns an error (which
// Search returns; the daemon stops the search when the client goes).
func (c *Client) Search(ctx context.Context, query string, timeout time.Duration, fn func(SearchHit) error) error {
	q := url.Values{"q": {query}}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	resp, err := c.Stream(ctx, "/v1/search?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer))
	for {
		var h SearchHit
		if err := dec.Decode(&h); err != nil {
			if err == io.EOF {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading search results: %w", err)
		}
		if err := fn(h); err != nil {
			return err
		}
	}
}
