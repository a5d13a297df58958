package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
)

// transferWindow is how far back the transfer rates in Status look.
const transferWindow = 5 * time.Second

// transferMeter turns the bandwidth counter's byte totals into the rates
// `kith status` shows: it samples the totals every second and reports
// the rate over the last transferWindow. (libp2p's own per-meter rates
// stay at zero here: their shared sweeper does not update them.)
type transferMeter struct {
	bw   *metrics.BandwidthCounter
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []transferSample // oldest first, at most one per second of the window
}

type transferSample struct {
	at      time.Time
	in, out int64
}

func startTransferMeter(bw *metrics.BandwidthCounter) *transferMeter {
	m := &transferMeter{bw: bw, stop: make(chan struct{}), done: make(chan struct{})}
	m.sample(time.Now())
	go m.loop()
	return m
}

func (m *transferMeter) loop() {
	defer close(m.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.sample(now)
		}
	}
}

func (m *transferMeter) sample(now time.Time) {
	var s transferSample
	s.at = now
	for _, st := range m.bw.GetBandwidthByProtocol() {
		s.in += st.TotalIn
		s.out += st.TotalOut
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, s)
	for len(m.samples) > 2 && now.Sub(m.samples[0].at) > transferWindow {
		m.samples = m.samples[1:]
	}
}

// rates returns the bytes per second received and sent over the window.
func (m *transferMeter) rates() (in, out float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) < 2 {
		return 0, 0
	}
	a, b := m.samples[0], m.samples[len(m.samples)-1]
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 {
		return 0, 0
	}
	return float64(b.in-a.in) / d, float64(b.out-a.out) / d
}

// close stops the sampling.
func (m *transferMeter) close() {
	close(m.stop)
	<-m.done
}
