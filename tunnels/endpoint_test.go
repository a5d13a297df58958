package tunnels

import (
	"context"
	"io"
	"testing"
	"time"
)

// chatEnd is an Endpoint for one chat target that runs the chat
// responder and echoes.
type chatEnd struct {
	target [32]byte
	ctx    context.Context
	served chan error
}

func (c *chatEnd) AcceptsTarget(target [32]byte) bool { return target == c.target }

func (c *chatEnd) ServeTunnel(target [32]byte, rw io.ReadWriteCloser) {
	go func() {
		sess, err := AcceptChatSession(c.ctx, rw, chatEndKey)
		if err != nil {
			c.served <- err
			return
		}
		_, err = io.Copy(sess, sess)
		sess.CloseWrite()
		sess.Close()
		c.served <- err
	}()
}

// chatEndKey is the static key of the chat identity chatEnd stands for.
var chatEndKey, _ = GenerateKey()

// TestRouterEndpoint: a tunnel to a chat target travels a chain like a
// file tunnel and ends at the Endpoint, which runs its own handshake.
func TestRouterEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target := TargetForChatID(chatEndKey.Public)
	end := &chatEnd{target: target, ctx: ctx, served: make(chan error, 1)}
	nodes := newNet(t, 3, chainEdges(3), func(i int, c *RouterConfig) {
		if i == 2 {
			c.Endpoint = end
		}
	})
	raws, err := nodes[0].r.RequestTunnels(ctx, target, 1)
	if err != nil {
		t.Fatal(err)
	}
	me, _ := GenerateKey()
	sess, err := OpenChatSession(ctx, raws[0], me, [32]byte(chatEndKey.Public))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	go func() { sess.Write([]byte("ping through the chain")); sess.CloseWrite() }()
	got, err := io.ReadAll(sess)
	if err != nil || string(got) != "ping through the chain" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if err := <-end.served; err != nil {
		t.Fatalf("endpoint: %v", err)
	}
	if _, err := nodes[0].r.RequestTunnels(ctx, TargetForChatID([]byte("someone else")), 1); err == nil {
		t.Fatal("a tunnel to a target no one accepts came up")
	}
}
