package share

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
)

// Swarming: a node serves the verified groups of a file it is still
// downloading, so that friends fetching the same file serve each other
// instead of all fetching it from its owner.
//
// A group is served only once the verifier has checked it against the root
// (it is groupCommitting or groupStored) and its proof is known: the
// verifier hands the proof that came with it to keepProofLocked, which
// writes its parent nodes into a partial outboard held in memory (64 bytes
// per group, so a download is swarmed only if that is at most
// MaxSwarmOutboard). Groups resumed from a bitmap after a restart have no
// proof in memory and are not served. Before a served group's bytes leave,
// the server reads them back from the partial file and verifies them again
// (see server_extra.go): what another downloader gets is what the root
// vouches for, whatever happened to the partial file since.
//
// A partial download is served in the scope its download uses: friends for
// a direct download, tunnels for an anonymous one (AddOptions.Anonymous), so that an anonymous download answers a tunnel's Have as
// a holder would and tells no friend what it fetches. The privacy cost of
// swarming a direct download: a friend that asks Have for a root learns
// that you are fetching it, and how far you are. ManagerConfig.NoSwarm
// turns it off.

// swarmState is a run's state for swarming and streaming, under run.mu.
// It is made once the run's size is fixed (see sideLocked).
type swarmState struct {
	// outboard is the partial outboard: its header and the parent nodes
	// of every proven group; nil if the download is not swarmed.
	outboard []byte
	// proven marks the groups verified whose proofs are in outboard.
	proven Bitmap
	// avail counts, per group, the attached sources that hold it (for
	// rarest first), recomputed every availRefresh.
	avail    []uint16
	availAt  int64 // UnixNano of the last count
	complete int   // attached sources that hold every group, at the last count
	// yielding holds since when a complete source's worker has found only
	// groups that a partial source holds too (see pickFreeLocked).
	yielding map[*sourceState]time.Time
	// wants are the spans stream readers wait for, most urgent first.
	wants map[*StreamReader][]groupSpan
}

// groupSpan is the groups from first, count of them.
type groupSpan struct{ first, count int64 }

// sideLocked returns the run's swarm state, making it if the size is
// fixed; nil before. The caller holds r.mu.
func (r *run) sideLocked() *swarmState {
	if r.sw != nil || r.state == nil {
		return r.sw
	}
	sw := &swarmState{wants: map[*StreamReader][]groupSpan{}, yielding: map[*sourceState]time.Time{}}
	if !r.m.cfg.NoSwarm && OutboardSize(r.size) <= MaxSwarmOutboard {
		sw.outboard = make([]byte, OutboardSize(r.size))
		binary.LittleEndian.PutUint64(sw.outboard, uint64(r.size))
		sw.proven = NewBitmap(r.groups)
	}
	r.sw = sw
	return sw
}

// keepProofLocked is called by the verifier for group i, just verified
// with proof: it keeps the proof's nodes so that the group can be served.
// The caller holds r.mu.
func (r *run) keepProofLocked(i int64, proof []byte) {
	sw := r.sideLocked()
	if sw == nil || sw.outboard == nil || len(proof) != GroupProofSize(r.size, i) {
		return
	}
	k := 0
	walkProof(r.size, i, func(off uint64) {
		copy(sw.outboard[off:off+NodeSize], proof[k:k+NodeSize])
		k += NodeSize
	})
	sw.proven.Set(i)
}

// PartialFile is a file a node is downloading, as its server sees it.
type PartialFile struct {
	r *run
}

// Partials gives a Server the files it may serve while they download.
type Partials interface {
	// Partial returns the download of root if it may be served in scope.
	Partial(root [32]byte, scope Scope) (*PartialFile, bool)
}

// Partial implements Partials: a running download whose size is fixed (or
// a seed), served in the scope of its download (ScopeAnonymous for one
// through anonymous tunnels only, ScopeFriend otherwise), unless
// ManagerConfig.NoSwarm.
func (m *Manager) Partial(root [32]byte, scope Scope) (*PartialFile, bool) {
	if m.cfg.NoSwarm {
		return nil, false
	}
	m.mu.Lock()
	r, ok := m.runs[root]
	if !ok {
		r, ok = m.seedLocked(root)
	}
	m.mu.Unlock()
	if !ok {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if swarmScope(r.rec) != scope {
		return nil, false
	}
	if sw := r.sideLocked(); sw == nil || sw.outboard == nil {
		return nil, false
	}
	return &PartialFile{r: r}, true
}

// swarmScope is the scope a download is served in while it runs.
func swarmScope(rec downloadRecord) Scope {
	if rec.Anonymous {
		return ScopeAnonymous
	}
	return ScopeFriend
}

// PartialRoots returns the roots of the downloads servable in scope now:
// for a tunnel holder, which knows targets, not roots.
func (m *Manager) PartialRoots(scope Scope) [][32]byte {
	m.mu.Lock()
	runs := make([]*run, 0, len(m.runs)+len(m.seeds))
	for _, r := range m.runs {
		runs = append(runs, r)
	}
	runs = append(runs, m.seeds...)
	m.mu.Unlock()
	var out [][32]byte
	for _, r := range runs {
		if _, ok := m.Partial(r.root, scope); ok {
			out = append(out, r.root)
		}
	}
	return out
}

// Have returns what the partial file holds to serve.
func (p *PartialFile) Have() HaveReply {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	h := HaveReply{Size: r.size, Bitmap: append(Bitmap(nil), r.sw.proven...), Fetching: NewBitmap(r.groups)}
	for i, st := range r.state {
		if st == groupAsked || st == groupWriting || st == groupWritten {
			h.Fetching.Set(int64(i))
		}
	}
	return h
}

// Size returns the file's size.
func (p *PartialFile) Size() int64 {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return p.r.size
}

// AppendProof appends the proof of count groups from first to dst, if
// every one of them is verified and proven; ok is false otherwise.
func (p *PartialFile) AppendProof(dst []byte, first, count int64) (_ []byte, ok bool) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if CheckRange(r.size, first, count) != nil {
		return dst, false
	}
	for i := first; i < first+count; i++ {
		if !r.sw.proven.Has(i) {
			return dst, false
		}
	}
	t := Tree{Root: r.root, Size: r.size, Outboard: r.sw.outboard}
	dst, err := t.AppendProof(dst, first, count)
	return dst, err == nil
}

// Open opens the partial file for reading, or the finished file once the
// download is done.
func (p *PartialFile) Open() (*os.File, error) {
	name := p.r.m.partialPath(p.r.root)
	p.r.mu.Lock()
	if p.r.rec.State == StateDone {
		name = p.r.rec.Path
	}
	p.r.mu.Unlock()
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("opening partial file: %w", err)
	}
	return f, nil
}

// Root returns the file's root.
func (p *PartialFile) Root() [32]byte { return p.r.root }

// keepSeedLocked keeps a download that just ended, if it is done and every
// group of it is proven, among the seeds: it goes on being served from
// where it was placed until the daemon stops, the download is forgotten
// (Cancel) or MaxSeeds newer ones push it out. The caller holds m.mu.
func (m *Manager) keepSeedLocked(r *run) {
	r.mu.Lock()
	ok := r.rec.State == StateDone && r.sw != nil && r.sw.outboard != nil && r.groups > 0
	for i := int64(0); ok && i < r.groups; i++ {
		ok = r.sw.proven.Has(i)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	m.dropSeedLocked(r.root)
	m.seeds = append(m.seeds, r)
	if len(m.seeds) > MaxSeeds {
		m.seeds = m.seeds[1:]
	}
}

// seedLocked returns the seed of root. The caller holds m.mu.
func (m *Manager) seedLocked(root [32]byte) (*run, bool) {
	for _, r := range m.seeds {
		if r.root == root {
			return r, true
		}
	}
	return nil, false
}

// dropSeedLocked forgets the seed of root. The caller holds m.mu.
func (m *Manager) dropSeedLocked(root [32]byte) {
	for i, r := range m.seeds {
		if r.root == root {
			m.seeds = append(m.seeds[:i], m.seeds[i+1:]...)
			return
		}
	}
}
