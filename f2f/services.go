package f2f

import (
	"context"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ServiceOf names the resource-manager service of a kith protocol: the
// second element of its ID ("/kith/chat/1" is "kith.chat"), or "" for a
// protocol that is not kith's (libp2p's own services name themselves).
func ServiceOf(pid protocol.ID) string {
	rest, ok := strings.CutPrefix(string(pid), "/kith/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	if name == "" {
		return ""
	}
	return "kith." + name
}

// servicesHost attaches every stream of a kith protocol, inbound and
// outbound, to its resource-manager service scope (ServiceOf) before the
// protocol's code sees it, as go-libp2p's own services do. So the
// buffers kith charges to a stream's scope count in the service's and
// the host's usage and in libp2p's resource-manager metrics, and the
// service limits (ServiceDefault, ServicePeerDefault) apply. A stream
// the resource manager will not attach is reset.
type servicesHost struct {
	host.Host
}

func attachService(s network.Stream, pid protocol.ID) error {
	svc := ServiceOf(pid)
	if svc == "" {
		return nil
	}
	if err := s.Scope().SetService(svc); err != nil {
		return fmt.Errorf("attaching stream to service %s: %w", svc, err)
	}
	return nil
}

// SetStreamHandler registers handler for pid; the handler gets the
// stream attached to pid's service.
func (h servicesHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) {
		if err := attachService(s, s.Protocol()); err != nil {
			s.Reset()
			return
		}
		handler(s)
	})
}

// SetStreamHandlerMatch is SetStreamHandler for the protocols m accepts.
func (h servicesHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, func(s network.Stream) {
		if err := attachService(s, s.Protocol()); err != nil {
			s.Reset()
			return
		}
		handler(s)
	})
}

// NewStream opens a stream to p and attaches it to the service of the
// protocol negotiated.
func (h servicesHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	if err := attachService(s, s.Protocol()); err != nil {
		s.Reset()
		return nil, err
	}
	return s, nil
}
