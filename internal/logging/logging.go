// Package logging makes the daemon's logger and routes the logs of
// go-libp2p and the DHT through it, so every line has one format and obeys
// one level. go-libp2p logs through log/slog (its gologshim package);
// go-libp2p-kad-dht and parts of libp2p log through go-log, which is zap;
// both are pointed at the daemon's slog handler.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"

	"kith/internal/peertext"
)

// Formats of log lines.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// New returns a logger writing lines of format (FormatText or FormatJSON)
// at level and above to w. Text lines quote any value that is not plain
// printable text; JSON lines escape control and bidi characters in string
// values with peertext: a peer's name or message that reaches a log may
// otherwise drive the terminal that shows it.
func New(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case FormatText, "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case FormatJSON:
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindString && !peertext.Safe(a.Value.String()) {
				a.Value = slog.StringValue(peertext.Line(a.Value.String()))
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want %s or %s", format, FormatText, FormatJSON)
}

var captureOnce sync.Once

// CaptureLibraries sends go-libp2p's and go-log's (the DHT's) logs at
// level and above to h, each line with a "logger" attribute naming the
// subsystem. Call it once, before the libraries log; later calls do
// nothing.
func CaptureLibraries(h slog.Handler, level slog.Level) {
	captureOnce.Do(func() {
		gologshim.SetDefaultHandler(levelHandler{h, level})
		golog.SetPrimaryCore(&zapCore{h: h, level: level})
		golog.SetAllLoggers(golog.LogLevel(zapLevel(level)))
	})
}

// levelHandler is h with its own minimum level.
type levelHandler struct {
	slog.Handler
	level slog.Level
}

func (l levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.level && l.Handler.Enabled(ctx, lv)
}

func (l levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{l.Handler.WithAttrs(as), l.level}
}

func (l levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{l.Handler.WithGroup(name), l.level}
}

// zapCore is a zap core that writes to a slog handler.
type zapCore struct {
	h      slog.Handler
	level  slog.Level
	fields []zapcore.Field
}

func (c *zapCore) Enabled(l zapcore.Level) bool {
	return slogLevel(l) >= c.level
}

func (c *zapCore) With(fields []zapcore.Field) zapcore.Core {
	return &zapCore{h: c.h, level: c.level, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c *zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	for k, v := range enc.Fields {
		r.AddAttrs(slog.Any(k, v))
	}
	return c.h.Handle(context.Background(), r)
}

func (c *zapCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l <= slog.LevelDebug:
		return zapcore.DebugLevel
	case l <= slog.LevelInfo:
		return zapcore.InfoLevel
	case l <= slog.LevelWarn:
		return zapcore.WarnLevel
	case l < math.MaxInt:
		return zapcore.ErrorLevel
	}
	return zapcore.FatalLevel
}
