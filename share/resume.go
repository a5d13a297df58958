package share

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A download's resume state is two bitmaps of recorded groups, kept under
// its root in bucketBitmaps:
//
//   - the fast bitmap, committed every few milliseconds without syncing the
//     partial file: its groups' bytes were written (pwrite) before it was
//     committed, so they are in the kernel's page cache, which outlives the
//     process. It is trusted only while the machine has not rebooted since
//     (same boot ID): a kill -9 loses nothing it names.
//   - the synced bitmap, committed only after an fdatasync of the partial
//     file (every DownloadSyncInterval): trusted after a reboot or a power
//     cut, when the page cache is gone.
//
// Syncing seldom keeps the disk's write-back off the transfer's critical
// path; a crash of the machine costs at most one sync interval of data.
//
// Layout: version (1 byte, 1) | len(boot ID) (1 byte) | boot ID |
// len(fast) (4 bytes, big endian) | fast | synced.

const resumeVersion = 1

// bootID names the running kernel boot: equal boot IDs mean the page cache
// of the earlier run survived. Empty where it cannot be read; then only the
// synced bitmap is ever trusted and every commit syncs.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

func encodeResume(boot string, fast, synced Bitmap) []byte {
	if len(boot) > 255 {
		boot = boot[:255]
	}
	out := make([]byte, 0, 2+len(boot)+4+len(fast)+len(synced))
	out = append(out, resumeVersion, byte(len(boot)))
	out = append(out, boot...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(fast)))
	out = append(out, fast...)
	return append(out, synced...)
}

// decodeResume returns the bitmap to trust for a download of groups groups:
// the fast one if the boot is the same, else the synced one. Anything
// malformed or of the wrong length yields an empty bitmap: fetch it all.
func decodeResume(v []byte, groups int64) Bitmap {
	want := int((groups + 7) / 8)
	if len(v) < 2 || v[0] != resumeVersion {
		return NewBitmap(groups)
	}
	bl := int(v[1])
	if len(v) < 2+bl+4 {
		return NewBitmap(groups)
	}
	boot := string(v[2 : 2+bl])
	rest := v[2+bl:]
	fl := int(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if fl > len(rest) {
		return NewBitmap(groups)
	}
	fast, synced := rest[:fl], rest[fl:]
	pick := synced
	if boot != "" && boot == bootID() {
		pick = fast
	}
	if len(pick) != want {
		return NewBitmap(groups)
	}
	return Bitmap(append([]byte(nil), pick...))
}

// commitItem is a written, verified range waiting to be made durable.
type commitItem struct{ first, count int64 }

// committer makes a run's verified groups durable in batches: it records
// them in the fast bitmap, and every DownloadSyncInterval syncs the partial
// file and records them in the synced one too. It runs beside the workers
// and never blocks them; the bitmap therefore lags what was received by the
// disk's write-back. That lag is all a crash can cost: a restart fetches
// again the groups not yet recorded, and never trusts a group whose bytes
// might not be on disk. Once every group is received the committer stops:
// the download no longer needs a bitmap.
//
// Its fields are its goroutine's alone; what it shares with the run is
// under the run's lock.
type committer struct {
	r        *run
	file     *os.File      // its own handle on the partial file, to sync it
	synced   Bitmap        // groups recorded after a sync
	lastSync time.Time     // when the partial file was last synced
	done     chan struct{} // closed when loop ends
}

// newCommitter opens the committer's handle on r's partial file. What r
// recorded is the starting point of both bitmaps: it was trusted as
// durable for this boot.
func newCommitter(r *run) (*committer, error) {
	f, err := os.Open(r.m.partialPath(r.root))
	if err != nil {
		return nil, fmt.Errorf("opening partial file: %w", err)
	}
	return &committer{r: r, file: f, synced: Bitmap(append([]byte(nil), r.bitmap...)), lastSync: time.Now(), done: make(chan struct{})}, nil
}

// close releases the committer's handle; loop calls it when it ends.
func (c *committer) close() { c.file.Close() }

// loop records batches of verified groups until the run ends or every
// group is received; an error recording them fails the download.
func (c *committer) loop() {
	defer close(c.done)
	defer c.close()
	r := c.r
	retry := time.NewTicker(DownloadLocalCheck)
	defer retry.Stop()
	var carry []commitItem // a batch that a full disk kept from being recorded
	for {
		var batch []commitItem
		select {
		case <-r.ctx.Done():
			return
		case <-r.complete:
			return
		case it := <-r.commits:
			batch = c.gather(it)
		case <-retry.C:
			if carry == nil {
				continue
			}
		}
		batch = append(carry, batch...)
		carry = nil
		if err := c.commit(batch); err != nil {
			if r.ctx.Err() != nil || r.isComplete() {
				return
			}
			if r.commitFailed(err) {
				carry = batch
				continue
			}
			r.fail(err)
			return
		}
	}
}

// gather collects the items that come within DownloadCommitDelay of first
// into one batch.
func (c *committer) gather(first commitItem) []commitItem {
	r := c.r
	batch := []commitItem{first}
	timer := time.NewTimer(DownloadCommitDelay)
	defer timer.Stop()
	for {
		select {
		case it := <-r.commits:
			batch = append(batch, it)
		case <-timer.C:
			return batch
		case <-r.ctx.Done():
			return batch
		}
	}
}

// commit records a batch of verified groups in the fast bitmap, and every
// DownloadSyncInterval syncs the partial file and copies the fast bitmap to
// the synced one.
func (c *committer) commit(batch []commitItem) error {
	r := c.r
	doSync := bootID() == "" || time.Since(c.lastSync) >= DownloadSyncInterval
	if doSync {
		// Every group of this batch (and of earlier ones) was written
		// before this point, so the sync covers all of next below.
		if err := syncData(c.file); err != nil {
			return syncError{err}
		}
		c.lastSync = time.Now()
	}
	if r.ctx.Err() != nil || r.isComplete() {
		return nil // the download is past needing a bitmap
	}
	next := r.nextBitmap(batch)
	synced := c.synced
	if doSync {
		synced = next
	}
	if err := r.storeBitmaps(next, synced); err != nil {
		return err
	}
	c.synced = synced
	r.markStored(batch, next)
	r.emit("download.progress", false)
	return nil
}

// nextBitmap is the bitmap of recorded groups with the verified groups of
// batch added.
func (r *run) nextBitmap(batch []commitItem) Bitmap {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := Bitmap(append([]byte(nil), r.bitmap...))
	for _, it := range batch {
		for i := it.first; i < it.first+it.count; i++ {
			if r.state[i] == groupCommitting {
				next.Set(i)
			}
		}
	}
	return next
}

// storeBitmaps records the two bitmaps of the download in one transaction.
func (r *run) storeBitmaps(fast, synced Bitmap) error {
	err := r.m.cfg.DB.Update(func(tx *bolt.Tx) error {
		// The committer may outlive the run by one batch: never write a
		// bitmap for a download that was finished or cancelled meanwhile.
		v := tx.Bucket(bucketDownloads).Get(r.root[:])
		var rec downloadRecord
		if v == nil || json.Unmarshal(v, &rec) != nil || rec.State == StateDone || rec.State == StateFailed {
			return nil
		}
		return tx.Bucket(bucketBitmaps).Put(r.root[:], encodeResume(bootID(), fast, synced))
	})
	if err != nil {
		return fmt.Errorf("recording verified groups: %w", err)
	}
	return nil
}

// markStored marks the groups of batch as recorded, next being the bitmap now
// stored.
func (r *run) markStored(batch []commitItem, next Bitmap) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bitmap = next
	for _, it := range batch {
		for i := it.first; i < it.first+it.count; i++ {
			if r.state[i] == groupCommitting {
				r.state[i] = groupStored
				r.stored++
			}
		}
	}
	r.cond.Broadcast()
}
