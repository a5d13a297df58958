package share

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// rateUnits are the units ParseRate knows, lower case, longest first where
// one is a suffix of another.
var rateUnits = []struct {
	name string
	mult int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// maxRateLen bounds what ParseRate looks at, so a silly number costs
// nothing.
const maxRateLen = 64

// ParseRate parses a rate in bytes per second, such as "64MiB", "10MB",
// "500KB", "1.5GiB" or "1048576". Units are case-insensitive and mean what
// they say: KB is 1000 bytes, KiB 1024, MB 10^6, MiB 2^20, and so on; a bare
// K, M, G or T is binary; a plain number is bytes. A trailing "/s" is
// allowed. "", "0" and "unlimited" give 0, which means no limit. Fractions
// of a byte are dropped. Anything else, a negative rate, or one that does not
// fit an int64 gives an error wrapping ErrBadRate.
func ParseRate(s string) (int64, error) {
	orig := s
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("%w %q: %s; use bytes per second such as 64MiB, 10MB or 0 for unlimited", ErrBadRate, orig, why)
	}
	if len(s) > maxRateLen {
		return bad("too long")
	}
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "/s")
	if s == "" || s == "unlimited" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range rateUnits {
		if strings.HasSuffix(s, u.name) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.name)), u.mult
			break
		}
	}
	if strings.HasPrefix(s, "-") {
		return bad("negative")
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) || (dot && (frac == "" || !allDigits(frac))) {
		return bad("not a number")
	}
	if !dot {
		n, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return bad("too large")
		}
		return n * mult, nil
	}
	// A fraction: compute exactly, then drop what is below a byte.
	r, ok := new(big.Rat).SetString(whole + "." + frac)
	if !ok {
		return bad("not a number")
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return bad("too large")
	}
	return n.Int64(), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatRate returns bytes per second as ParseRate reads it: "unlimited"
// for 0 or less, an exact unit where one fits ("64MiB", "10MB", "1500B"),
// and above 1 MiB otherwise binary units with at most two decimals
// ("1.18MiB"), which ParseRate reads back as a close but not always equal
// rate.
func FormatRate(bps int64) string {
	if bps <= 0 {
		return "unlimited"
	}
	// The exact unit that gives the smallest number.
	best, bestName := bps, "B"
	for _, u := range rateUnits {
		if len(u.name) < 2 || u.mult == 1 || bps%u.mult != 0 {
			continue
		}
		if n := bps / u.mult; n < best {
			best, bestName = n, strings.ToUpper(u.name[:1])+u.name[1:len(u.name)-1]+"B"
		}
	}
	if bestName != "B" || bps < 1<<20 {
		return strconv.FormatInt(best, 10) + bestName
	}
	names := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(bps)/1024, 0
	for v >= 1024 && i < len(names)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + names[i]
}

// Rate limiter tuning. The burst is a second's worth of bytes, within these
// bounds; Wait takes tokens in pieces of at most rateMinBurst, so a piece
// always fits the burst even while SetRate changes it.
const (
	rateMinBurst = 64 << 10
	rateMaxBurst = 4 << 20
)

// RateLimiter limits the bytes per second that many streams move together,
// such as all uploads of a node. A nil *RateLimiter and the zero value are
// unlimited. It is safe for concurrent use; waiters share the rate roughly
// fairly, in pieces of 64 KiB.
type RateLimiter struct {
	once sync.Once
	lim  *rate.Limiter
}

// NewRateLimiter returns a limiter of bytesPerSecond; 0 or less is
// unlimited.
func NewRateLimiter(bytesPerSecond int64) *RateLimiter {
	l := &RateLimiter{}
	l.SetRate(bytesPerSecond)
	return l
}

func (l *RateLimiter) limiter() *rate.Limiter {
	l.once.Do(func() { l.lim = rate.NewLimiter(rate.Inf, rateMinBurst) })
	return l.lim
}

// SetRate changes the rate to bytesPerSecond, 0 or less for unlimited. It
// applies at once to current waiters and to every reader and writer wrapped
// with l.
func (l *RateLimiter) SetRate(bytesPerSecond int64) {
	lim := l.limiter()
	if bytesPerSecond <= 0 {
		lim.SetLimit(rate.Inf)
		return
	}
	// The burst never falls below a piece (rateMinBurst), so a Wait that
	// races with SetRate still fits.
	burst := int(min(max(bytesPerSecond, rateMinBurst), rateMaxBurst))
	lim.SetBurst(burst)
	lim.SetLimit(rate.Limit(bytesPerSecond))
}

// Rate returns the rate in bytes per second, 0 for unlimited.
func (l *RateLimiter) Rate() int64 {
	if l == nil {
		return 0
	}
	r := l.limiter().Limit()
	if r == rate.Inf {
		return 0
	}
	return int64(r)
}

// Wait blocks until n bytes may pass, or ctx ends, when it returns an error.
// n may be larger than the burst: Wait then takes it in pieces, and bytes of
// pieces taken before ctx ended stay spent. On a nil or unlimited l it
// returns nil at once.
func (l *RateLimiter) Wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	lim := l.limiter()
	for n > 0 {
		if lim.Limit() == rate.Inf {
			return nil
		}
		k := min(n, rateMinBurst)
		if err := lim.WaitN(ctx, k); err != nil {
			return fmt.Errorf("waiting for rate limit: %w", err)
		}
		n -= k
	}
	return nil
}

// LimitReader returns a reader that reads from r and waits on l for every
// byte read, until ctx ends. With a nil l it returns r. The reader is safe
// for concurrent use only if r is.
func LimitReader(ctx context.Context, r io.Reader, l *RateLimiter) io.Reader {
	if l == nil {
		return r
	}
	return &limitedReader{ctx: ctx, r: r, l: l}
}

type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *RateLimiter
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	if lr.l.limiter().Limit() != rate.Inf && len(p) > rateMinBurst {
		p = p[:rateMinBurst]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.Wait(lr.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// LimitWriter returns a writer that waits on l before it passes bytes on to
// w, until ctx ends. Large writes go to w in pieces, each after its wait.
// With a nil l it returns w. The writer is safe for concurrent use only if w
// is.
func LimitWriter(ctx context.Context, w io.Writer, l *RateLimiter) io.Writer {
	if l == nil {
		return w
	}
	return &limitedWriter{ctx: ctx, w: w, l: l}
}

type limitedWriter struct {
	ctx context.Context
	w   io.Writer
	l   *RateLimiter
}

func (lw *limitedWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if lw.l.limiter().Limit() == rate.Inf {
			n, err := lw.w.Write(p)
			return done + n, err
		}
		k := min(len(p), rateMinBurst)
		if err := lw.l.Wait(lw.ctx, k); err != nil {
			return done, err
		}
		n, err := lw.w.Write(p[:k])
		done += n
		if err != nil {
			return done, err
		}
		p = p[k:]
	}
	return done, nil
}
