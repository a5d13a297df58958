package share

import (
	"encoding/binary"
	"os"
	"strings"
	"sync"
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
