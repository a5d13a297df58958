package share

import "time"

// What people see of a running download: its events, its snapshot and the
// byte rates of it and of each source.

// emit sends an event; progress events are throttled to a few a second.
func (r *run) emit(typ string, force bool) {
	if r.m.cfg.OnEvent == nil {
		return
	}
	r.mu.Lock()
	if !force && time.Since(r.lastEmit) < 250*time.Millisecond {
		r.mu.Unlock()
		return
	}
	r.lastEmit = time.Now()
	r.mu.Unlock()
	r.m.cfg.OnEvent(typ, r.info())
}

// info is a snapshot of the download.
func (r *run) info() DownloadInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := DownloadInfo{
		Root: r.rootHex(), Name: r.rec.Name, Size: r.rec.Size, SizeProven: r.rec.SizeProven, Dir: r.rec.Dir,
		State: r.rec.State, Reason: r.rec.Reason, Path: r.rec.Path, Error: r.rec.Error,
		Groups: r.groups, Verified: r.stored, Received: r.received, Rate: r.meter.rate(),
		Added: r.rec.Added, Finished: r.rec.Finished, Sources: []SourceInfo{}, Anonymous: r.rec.Anonymous,
		ResumedGroups: r.resumed, FetchedGroups: r.fetched, DuplicateGroups: r.duplicates, BadRanges: r.bad,
	}
	if r.groups == 0 && r.rec.Size > 0 {
		info.Groups = Groups(r.rec.Size)
	}
	switch {
	case r.rec.State == StateDone:
		// The whole file was checked against its root.
		info.Verified, info.Received, info.Done = info.Groups, info.Groups, r.rec.Size
	case r.received == r.groups:
		info.Done = r.size
	default:
		info.Done = min(r.received*GroupSize, r.size)
	}
	for _, s := range r.sources {
		info.Sources = append(info.Sources, SourceInfo{Name: s.Name, Bytes: s.bytes, Rate: s.meter.rate()})
	}
	info.Sources = append(info.Sources, r.gone...)
	return info
}

// meter measures a byte rate over the last few seconds. Not safe for
// concurrent use; callers hold the run's lock.
//
// In its first seconds it divides by the time since its first byte (at
// least meterMinElapsed), not by the whole span of its buckets: a source
// that has sent for 1.5 s at 45 MiB/s measured 19 MiB/s the old way, so
// its window (windowLocked) stayed at DownloadBaseWindow for three
// seconds, and over a 150 ms tunnel the holder ran dry half of a 256 MiB
// download (wan-bench, BENCHMARKS.md).
type meter struct {
	buckets [4]int64  // bytes per second, ring
	stamp   int64     // second of buckets[stamp%4]
	first   time.Time // the first byte; zero before it
}

// meterMinElapsed is the least time a meter divides by, so that its
// first burst does not read as a rate.
const meterMinElapsed = time.Second

func (m *meter) advance(now int64) {
	if now-m.stamp >= int64(len(m.buckets)) {
		m.buckets = [4]int64{}
	} else {
		for s := m.stamp + 1; s <= now; s++ {
			m.buckets[s%4] = 0
		}
	}
	if now > m.stamp {
		m.stamp = now
	}
}

func (m *meter) add(n int64) { m.addAt(n, time.Now()) }

func (m *meter) addAt(n int64, t time.Time) {
	if m.first.IsZero() {
		m.first = t
	}
	now := t.Unix()
	m.advance(now)
	m.buckets[now%4] += n
}

// rate averages the last three whole seconds and the current one, weighted
// by elapsed time, or the time since the first byte if that is shorter.
func (m *meter) rate() float64 { return m.rateAt(time.Now()) }

func (m *meter) rateAt(t time.Time) float64 {
	now := t.Unix()
	m.advance(now)
	var sum int64
	for _, b := range m.buckets {
		sum += b
	}
	elapsed := 3 + float64(t.Nanosecond())/1e9
	if since := max(t.Sub(m.first), meterMinElapsed).Seconds(); since < elapsed {
		elapsed = since
	}
	return float64(sum) / elapsed
}
