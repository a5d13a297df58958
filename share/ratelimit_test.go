package share

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"0", 0},
		{"unlimited", 0},
		{"1048576", 1 << 20},
		{"500B", 500},
		{"500KB", 500_000},
		{"500kb", 500_000},
		{"64MiB", 64 << 20},
		{"64mib", 64 << 20},
		{"64 MiB", 64 << 20},
		{"64MiB/s", 64 << 20},
		{"10MB", 10_000_000},
		{"1GiB", 1 << 30},
		{"1GB", 1_000_000_000},
		{"2TiB", 2 << 40},
		{"8K", 8 << 10},
		{"1.5MiB", 3 << 19},
		{"0.5KB", 500},
		{"1.0001B", 1},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
	for _, in := range []string{
		"-1", "-5MiB", "fast", "MiB", "1..5MB", "1.MB", ".5MB", "1e6", "0x10",
		"1/2MB", "5 MiBs", "1 2", "9223372036854775808", "9000000000GiB",
		"8388608TiB", "99999999999999999999.5TB", "1" + string(make([]byte, 100)),
	} {
		if got, err := ParseRate(in); !errors.Is(err, ErrBadRate) {
			t.Errorf("ParseRate(%q) = %d, %v; want ErrBadRate", in, got, err)
		}
	}
}

func TestFormatRate(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "unlimited"},
		{-1, "unlimited"},
		{500, "500B"},
		{1500, "1500B"},
		{1024, "1KiB"},
		{64 << 20, "64MiB"},
		{10_000_000, "10MB"},
		{1 << 30, "1GiB"},
		{3 << 19, "1536KiB"},
		{1234567, "1.18MiB"},
	}
	for _, tt := range tests {
		if got := FormatRate(tt.in); got != tt.want {
			t.Errorf("FormatRate(%d) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := ParseRate(FormatRate(tt.in)); err != nil || (tt.in != 1234567 && back != max(tt.in, 0)) {
			t.Errorf("ParseRate(FormatRate(%d)) = %d, %v", tt.in, back, err)
		}
	}
}

func TestRateLimiterSlows(t *testing.T) {
	l := NewRateLimiter(1 << 20)
	if l.Rate() != 1<<20 {
		t.Errorf("Rate() = %d", l.Rate())
	}
	data := make([]byte, 2<<20)
	start := time.Now()
	var out bytes.Buffer
	n, err := io.Copy(LimitWriter(context.Background(), &out, l), bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatal(n, err)
	}
	// The first second's worth passes at once (the burst), the rest at the
	// rate: about a second. A lower bound only.
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("2 MiB at 1 MiB/s took %v", d)
	}

	// Reads are limited too, and a change of rate applies at once.
	l.SetRate(1 << 30)
	start = time.Now()
	if n, err := io.Copy(io.Discard, LimitReader(context.Background(), bytes.NewReader(data), l)); err != nil || n != int64(len(data)) {
		t.Fatal(n, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("2 MiB at 1 GiB/s took %v", d)
	}
}

func TestRateLimiterUnlimitedAndCancel(t *testing.T) {
	var nilLimiter *RateLimiter
	if err := nilLimiter.Wait(context.Background(), 1<<40); err != nil {
		t.Error(err)
	}
	if nilLimiter.Rate() != 0 {
		t.Error("nil limiter has a rate")
	}
	var zero RateLimiter
	if err := zero.Wait(context.Background(), 1<<40); err != nil {
		t.Error(err)
	}
	if w := LimitWriter(context.Background(), io.Discard, nil); w != io.Discard {
		t.Error("LimitWriter with nil limiter wraps")
	}
	if err := NewRateLimiter(0).Wait(context.Background(), 1<<40); err != nil {
		t.Error(err)
	}

	l := NewRateLimiter(100 << 10)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.Wait(ctx, 10<<20); err == nil {
		t.Error("Wait of 100 s outlived its ctx")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled Wait took %v", d)
	}
	w := LimitWriter(ctx, io.Discard, l)
	if _, err := w.Write(make([]byte, 10<<20)); err == nil {
		t.Error("Write of 100 s outlived its ctx")
	}
}
