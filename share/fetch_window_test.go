package share

import (
	"testing"
	"time"
)

// TestSourceWindowFollowsRate: a source gets DownloadBaseWindow requests
// until its rate is known, then what it sends in DownloadWindowTime,
// never fewer than the base nor more than Tuning.Window.
func TestSourceWindowFollowsRate(t *testing.T) {
	tu := Tuning{}.withDefaults()
	r := &run{m: &Manager{cfg: ManagerConfig{Tuning: tu}}}
	source := func(attachedAgo time.Duration, bytesPerSecond int64) *sourceState {
		now := time.Now()
		s := &sourceState{attached: now.Add(-attachedAgo)}
		// Steady since the attachment, or for the meter's four seconds.
		d := min(attachedAgo, 4*time.Second)
		fillMeter(&s.meter, bytesPerSecond, now.Add(-d), d)
		return s
	}
	rangeBytes := float64(tu.RangeGroups * GroupSize)
	for _, c := range []struct {
		name string
		s    *sourceState
		want int // 0: what it sends in DownloadWindowTime, within a range
	}{
		{"just attached, fast", source(0, 100<<20), DownloadBaseWindow},
		{"slow (4 MiB/s)", source(5*time.Second, 4<<20), DownloadBaseWindow},
		{"fast (60 MiB/s)", source(5*time.Second, 60<<20), DownloadWindow},
		{"between (30 MiB/s)", source(5*time.Second, 30<<20), 0},
		// Sending for 1.5 s only: the rate is its own, not diluted
		// over the meter's span (TestMeterRateFromFirstByte).
		{"between, just begun", source(1500*time.Millisecond, 30<<20), 0},
	} {
		got := r.windowLocked(c.s)
		if c.want == 0 {
			lo := int(30 << 20 * DownloadWindowTime.Seconds() / rangeBytes)
			if got < lo-1 || got > lo+1 || got <= DownloadBaseWindow || got >= DownloadWindow {
				t.Errorf("%s: window %d, want about %d, between %d and %d", c.name, got, lo+1, DownloadBaseWindow, DownloadWindow)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s: window %d, want %d", c.name, got, c.want)
		}
	}
	// A Tuning.Window below the base is the window, whatever the rate.
	r.m.cfg.Tuning.Window = 2
	if got := r.windowLocked(source(5*time.Second, 60<<20)); got != 2 {
		t.Errorf("Tuning.Window 2: window %d", got)
	}
}

// TestMeterRateFromFirstByte: a source that has sent for 1.5 s at a steady
// rate measures that rate, not what its bytes would be over the meter's
// whole four seconds; its first burst counts as a second's worth; and once
// it has sent for longer than the buckets span, the rate is theirs.
func TestMeterRateFromFirstByte(t *testing.T) {
	const bps = 45 << 20
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 500e6, time.UTC)
	steady := func(d time.Duration) *meter {
		var m meter
		fillMeter(&m, bps, t0, d)
		return &m
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if got < want*0.95 || got > want*1.05 {
			t.Errorf("%s: rate %.1f MiB/s, want %.1f", name, got/(1<<20), want/(1<<20))
		}
	}
	var idle meter
	if r := idle.rateAt(t0); r != 0 {
		t.Errorf("no bytes: rate %.0f", r)
	}
	near("1.5 s at 45 MiB/s", steady(1500*time.Millisecond).rateAt(t0.Add(1500*time.Millisecond)), bps)
	near("10 s at 45 MiB/s", steady(10*time.Second).rateAt(t0.Add(10*time.Second)), bps)
	var burst meter
	burst.addAt(8<<20, t0)
	near("8 MiB at once", burst.rateAt(t0.Add(100*time.Millisecond)), 8<<20)
	// Idle after sending: the rate falls as the buckets empty.
	m := steady(2 * time.Second)
	if r := m.rateAt(t0.Add(8 * time.Second)); r != 0 {
		t.Errorf("6 s idle: rate %.1f MiB/s, want 0", r/(1<<20))
	}
}

// fillMeter adds to m bytesPerSecond for d from start, every 10 ms.
func fillMeter(m *meter, bytesPerSecond int64, start time.Time, d time.Duration) {
	for at := time.Duration(0); at < d; at += 10 * time.Millisecond {
		m.addAt(bytesPerSecond/100, start.Add(at))
	}
}
