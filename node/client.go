package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kith/share"
)

// ErrNoDaemon means no daemon answers on the home's API socket.
var ErrNoDaemon = errors.New("no daemon is running")

// APIError is an error answer from the daemon. It unwraps to the sentinel
// error its code stands for, so callers can use errors.Is.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Unwrap returns the sentinel error of the code, if known.
func (e *APIError) Unwrap() error {
	for _, a := range apiErrors {
		if a.code == e.Code {
			return a.err
		}
	}
	return nil
}

// Client talks to a daemon through its API socket. It is safe for
// concurrent use.
type Client struct {
	home string
	hc   *http.Client
}

// NewClient returns a client for the daemon of home.
func NewClient(home string) *Client {
	sock := filepath.Join(home, SocketFile)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", sock)
			// A daemon that lost its socket makes it again within
			// socketCheckInterval: wait for it rather than say none runs.
			for deadline := time.Now().Add(3 * socketCheckInterval); err != nil && isDialFailure(err) &&
				time.Now().Before(deadline) && DaemonPID(home) > 0; {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
				conn, err = d.DialContext(ctx, "unix", sock)
			}
			return conn, err
		},
		DisableCompression: true,
	}
	return &Client{home: home, hc: &http.Client{Transport: tr}}
}

func (c *Client) noDaemon(err error) error {
	if pid := DaemonPID(c.home); pid > 0 {
		return fmt.Errorf("%w: the daemon of %s (process %d) runs but does not answer on %s; it makes its socket again within seconds of losing it: try again, or stop that process",
			ErrNoDaemon, c.home, pid, SocketFile)
	}
	return fmt.Errorf("%w for home %s: start it with `kith up` (%v)", ErrNoDaemon, c.home, err)
}

func isDialFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" ||
		errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// do sends a request with an optional JSON body and decodes the JSON answer
// into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kith"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if isDialFailure(err) {
			return c.noDaemon(err)
		}
		return fmt.Errorf("talking to the daemon: %w", err)
	}
	defer resp.Body.Close()
	return decodeAnswer(resp, out)
}

func decodeAnswer(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: strings.TrimSpace(string(b)), Code: "unknown"}
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the daemon's answer: %w", err)
	}
	return nil
}

// Status asks for the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Invite asks for the node's invite.
func (c *Client) Invite(ctx context.Context) (InviteInfo, error) {
	var i InviteInfo
	return i, c.do(ctx, http.MethodGet, "/v1/invite", nil, &i)
}

// Friends lists the friends.
func (c *Client) Friends(ctx context.Context) ([]FriendInfo, error) {
	var fs []FriendInfo
	return fs, c.do(ctx, http.MethodGet, "/v1/friends", nil, &fs)
}

// AddFriend adds the node of an invite as a friend.
func (c *Client) AddFriend(ctx context.Context, invite, name string) (FriendInfo, error) {
	var f FriendInfo
	return f, c.do(ctx, http.MethodPost, "/v1/friends", AddFriendRequest{Invite: invite, Name: name}, &f)
}

// RemoveFriend removes a friend by peer ID or name.
func (c *Client) RemoveFriend(ctx context.Context, ref string) (FriendInfo, error) {
	var f FriendInfo
	return f, c.do(ctx, http.MethodDelete, "/v1/friends/"+url.PathEscape(ref), nil, &f)
}

// stream opens a GET of path whose answer the caller reads as it comes;
// the caller closes the body. An error answer is decoded into an APIError.
func (c *Client) stream(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://kith"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if isDialFailure(err) {
			return nil, c.noDaemon(err)
		}
		return nil, fmt.Errorf("talking to the daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeAnswer(resp, nil)
	}
	return resp, nil
}

// Events follows the daemon's event stream, calling fn for each event until
// ctx ends, the daemon goes away, or fn returns an error.
func (c *Client) Events(ctx context.Context, fn func(Event) error) error {
	return c.EventsSince(ctx, 0, fn)
}

// EventsSince is Events for a client that saw events up to the one with
// ID since: the daemon first sends those it still keeps after it (and an
// EventDropped if it no longer keeps them all).
func (c *Client) EventsSince(ctx context.Context, since uint64, fn func(Event) error) error {
	path := "/v1/events"
	if since > 0 {
		path += "?since=" + strconv.FormatUint(since, 10)
	}
	resp, err := c.stream(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("decoding event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading events: %w", err)
	}
	return ctx.Err()
}

// Config lists the daemon's settings.
func (c *Client) Config(ctx context.Context) ([]Setting, error) {
	var out []Setting
	return out, c.do(ctx, http.MethodGet, "/v1/config", nil, &out)
}

// SetConfig changes one setting.
func (c *Client) SetConfig(ctx context.Context, key, value string) (Setting, error) {
	var out Setting
	return out, c.do(ctx, http.MethodPut, "/v1/config/"+url.PathEscape(key), SetConfigRequest{Value: value}, &out)
}

// Shares lists the node's shared folders.
func (c *Client) Shares(ctx context.Context) ([]share.ShareInfo, error) {
	var out []share.ShareInfo
	return out, c.do(ctx, http.MethodGet, "/v1/shares", nil, &out)
}

// AddShare shares a folder (an absolute path on the daemon's machine) and
// waits for its first scan.
func (c *Client) AddShare(ctx context.Context, req AddShareRequest) (AddShareResponse, error) {
	var out AddShareResponse
	return out, c.do(ctx, http.MethodPost, "/v1/shares", req, &out)
}

// RemoveShare stops sharing a folder.
func (c *Client) RemoveShare(ctx context.Context, dir string) (share.ShareInfo, error) {
	var out share.ShareInfo
	return out, c.do(ctx, http.MethodDelete, "/v1/shares?dir="+url.QueryEscape(dir), nil, &out)
}

// Rescan rescans every share and waits for it.
func (c *Client) Rescan(ctx context.Context) (share.ScanStats, error) {
	var out share.ScanStats
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

// Browse lists a friend's browsable shares at path.
func (c *Client) Browse(ctx context.Context, friend, path string, offset int) (BrowseListing, error) {
	var out BrowseListing
	q := url.Values{"path": {path}, "offset": {strconv.Itoa(offset)}}
	return out, c.do(ctx, http.MethodGet, "/v1/browse/"+url.PathEscape(friend)+"?"+q.Encode(), nil, &out)
}

// Downloads lists the downloads.
func (c *Client) Downloads(ctx context.Context) ([]share.DownloadInfo, error) {
	var out []share.DownloadInfo
	return out, c.do(ctx, http.MethodGet, "/v1/downloads", nil, &out)
}

// Get queues a download of a link or root into dir ("" for the default).
func (c *Client) Get(ctx context.Context, link, dir string) (share.DownloadInfo, error) {
	return c.AddDownload(ctx, GetRequest{Link: link, To: dir})
}

// AddDownload queues a download as req says (Anonymous: tunnels only).
func (c *Client) AddDownload(ctx context.Context, req GetRequest) (share.DownloadInfo, error) {
	var out share.DownloadInfo
	return out, c.do(ctx, http.MethodPost, "/v1/downloads", req, &out)
}

// Search runs an anonymous search through the friends' routers for
// timeout (0: DefaultSearchTimeout), calling fn for each hit as it
// arrives, until the search ends, ctx ends or fn returns an error.
func (c *Client) Search(ctx context.Context, query string, timeout time.Duration, fn func(SearchHit) error) error {
	q := url.Values{"q": {query}}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	resp, err := c.stream(ctx, "/v1/search?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
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

// Download returns one download's state.
func (c *Client) Download(ctx context.Context, root string) (share.DownloadInfo, error) {
	var out share.DownloadInfo
	return out, c.do(ctx, http.MethodGet, "/v1/downloads/"+url.PathEscape(root), nil, &out)
}

// CancelDownload stops and forgets a download.
func (c *Client) CancelDownload(ctx context.Context, root string) error {
	return c.do(ctx, http.MethodDelete, "/v1/downloads/"+url.PathEscape(root), nil, nil)
}
