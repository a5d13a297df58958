package api

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

	"kith/internal/homedir"
)

const (
	// SocketRemakeWait is how long a client waits for the socket of a
	// daemon that runs but lost it: the daemon looks every second and
	// makes it again.
	SocketRemakeWait = 3 * time.Second
	// maxAnswer bounds an answer the client reads whole.
	maxAnswer = 64 << 20
	// maxEventLine bounds one line of the event stream.
	maxEventLine = 1 << 20
)

// Client talks to a daemon through its API socket. It is safe for
// concurrent use. Its methods block until the daemon answered or ctx
// ended; an error answer is an *Error that unwraps to the sentinel of its
// code, and a home without a daemon gives an error wrapping ErrNoDaemon
// that says what to do.
type Client struct {
	home string
	hc   *http.Client
}

// NewClient returns a client for the daemon of home. It does not connect
// until a method is called.
func NewClient(home string) *Client {
	sock := filepath.Join(home, homedir.SocketFile)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", sock)
			// A daemon that lost its socket makes it again: wait for it
			// rather than say none runs.
			for deadline := time.Now().Add(SocketRemakeWait); err != nil && isDialFailure(err) &&
				time.Now().Before(deadline) && homedir.DaemonPID(home) > 0; {
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
	if pid := homedir.DaemonPID(c.home); pid > 0 {
		return fmt.Errorf("%w: the daemon of %s (process %d) runs but does not answer on %s; it makes its socket again within seconds of losing it: try again, or stop that process",
			ErrNoDaemon, c.home, pid, homedir.SocketFile)
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: strings.TrimSpace(string(b)), Code: CodeUnknown}
		}
		return &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the daemon's answer: %w", err)
	}
	return nil
}

// Stream opens a GET of path (with its query) whose answer the caller
// reads as it comes, and must close: for endpoints without a method of
// their own (/metrics, /debug/pprof/...). An error answer is returned as
// an *Error.
func (c *Client) Stream(ctx context.Context, path string) (*http.Response, error) {
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

// Introduce asks the daemon for an introduction invite good for ttl (0:
// a day).
func (c *Client) Introduce(ctx context.Context, ttl time.Duration) (InviteInfo, error) {
	var out InviteInfo
	return out, c.do(ctx, http.MethodPost, "/v1/invite/introduce", IntroduceRequest{TTLSeconds: int64(ttl / time.Second)}, &out)
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

// Introductions lists the introductions waiting for approval.
func (c *Client) Introductions(ctx context.Context) ([]IntroRequestInfo, error) {
	var out []IntroRequestInfo
	return out, c.do(ctx, http.MethodGet, "/v1/introductions", nil, &out)
}

// ApproveIntroduction adds the node of a pending introduction as a friend.
func (c *Client) ApproveIntroduction(ctx context.Context, ref string) (FriendInfo, error) {
	var out FriendInfo
	return out, c.do(ctx, http.MethodPost, "/v1/introductions/"+url.PathEscape(ref)+"/approve", nil, &out)
}

// RejectIntroduction drops a pending introduction.
func (c *Client) RejectIntroduction(ctx context.Context, ref string) (IntroRequestInfo, error) {
	var out IntroRequestInfo
	return out, c.do(ctx, http.MethodDelete, "/v1/introductions/"+url.PathEscape(ref), nil, &out)
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
	resp, err := c.Stream(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
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
