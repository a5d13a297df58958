package node

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/f2f"
	"kith/internal/peertext"
)

// logNames is a slog.Handler that names friends in the node's log lines:
// an attribute whose value is a friend's peer.ID, its text form or its
// short form (<peer.ID 12*UdnMef>) reads "bob (12*UdnMef)". Every
// component logs through the node's logger, so they all show names; the
// names are the user's (or the friend's invite's), shown through
// peertext.
type logNames struct {
	next  slog.Handler
	names *atomic.Pointer[map[string]string]
}

func newLogNames(next slog.Handler) logNames {
	return logNames{next: next, names: new(atomic.Pointer[map[string]string])}
}

// shortID is the short form of a peer ID without its "<peer.ID >" frame.
func shortID(id peer.ID) string {
	return strings.TrimSuffix(strings.TrimPrefix(id.ShortString(), "<peer.ID "), ">")
}

// set makes the handler name the friends fs.
func (h logNames) set(fs []f2f.Friend) {
	m := make(map[string]string, 3*len(fs))
	for _, f := range fs {
		if f.Name == "" {
			continue
		}
		label := peertext.Line(f.Name) + " (" + shortID(f.ID) + ")"
		m[f.ID.String()] = label
		m[f.ID.ShortString()] = label
	}
	h.names.Store(&m)
}

func (h logNames) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h logNames) Handle(ctx context.Context, r slog.Record) error {
	m := h.names.Load()
	if m == nil || len(*m) == 0 || r.NumAttrs() == 0 {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(nameAttr(a, *m))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h logNames) WithAttrs(as []slog.Attr) slog.Handler {
	if m := h.names.Load(); m != nil && len(*m) > 0 {
		named := make([]slog.Attr, len(as))
		for i, a := range as {
			named[i] = nameAttr(a, *m)
		}
		as = named
	}
	return logNames{next: h.next.WithAttrs(as), names: h.names}
}

func (h logNames) WithGroup(name string) slog.Handler {
	return logNames{next: h.next.WithGroup(name), names: h.names}
}

// nameAttr returns a with a friend's peer ID in its value replaced by
// the friend's label.
func nameAttr(a slog.Attr, names map[string]string) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if l, ok := names[v.String()]; ok {
			return slog.String(a.Key, l)
		}
	case slog.KindAny:
		if id, ok := v.Any().(peer.ID); ok {
			if l, ok := names[id.String()]; ok {
				return slog.String(a.Key, l)
			}
		}
	case slog.KindGroup:
		g := v.Group()
		named := make([]any, len(g))
		for i, ga := range g {
			named[i] = nameAttr(ga, names)
		}
		return slog.Group(a.Key, named...)
	}
	return a
}
