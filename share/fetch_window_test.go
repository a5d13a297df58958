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
		s := &sourceState{attached: time.Now().Add(-attachedAgo)}
		s.meter.add(4 * bytesPerSecond) // the meter's four seconds at once
		return s
	}
	rangeBytes := tu.RangeGroups * GroupSize
	for _, c := range []struct {
		name string
		s    *sourceState
		want int
	}{
		{"just attached, fast", source(0, 100<<20), DownloadBaseWindow},
		{"slow (4 MiB/s)", source(5*time.Second, 4<<20), DownloadBaseWindow},
		{"fast (60 MiB/s)", source(5*time.Second, 60<<20), DownloadWindow},
		{"between (30 MiB/s)", source(5*time.Second, 30<<20), 0},
	} {
		got := r.windowLocked(c.s)
		if c.want == 0 {
			// What 30 MiB/s sends in DownloadWindowTime, within a range.
			rate := c.s.meter.rate()
			lo := int(rate * DownloadWindowTime.Seconds() / float64(rangeBytes))
			if got < lo || got > lo+1 || got <= DownloadBaseWindow || got >= DownloadWindow {
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
