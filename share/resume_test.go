package share

import (
	"bytes"
	"testing"
)

// TestResumeBitmaps: the fast bitmap is trusted only in the same boot, the
// synced one after a reboot, and nothing malformed is trusted.
func TestResumeBitmaps(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot ID on this system: only synced bitmaps are used")
	}
	const groups = 20
	fast, synced := NewBitmap(groups), NewBitmap(groups)
	for i := range int64(12) {
		fast.Set(i)
	}
	for i := range int64(5) {
		synced.Set(i)
	}
	same := decodeResume(encodeResume(bootID(), fast, synced), groups)
	if !bytes.Equal(same, fast) {
		t.Fatalf("same boot: got %x, want the fast bitmap %x", same, fast)
	}
	rebooted := decodeResume(encodeResume("another-boot", fast, synced), groups)
	if !bytes.Equal(rebooted, synced) {
		t.Fatalf("after a reboot: got %x, want the synced bitmap %x", rebooted, synced)
	}
	empty := NewBitmap(groups)
	v := encodeResume(bootID(), fast, synced)
	for name, bad := range map[string][]byte{
		"nil":            nil,
		"wrong version":  append([]byte{9}, v[1:]...),
		"truncated":      v[:5],
		"wrong length":   encodeResume(bootID(), NewBitmap(groups*4), synced),
		"fast too long":  append(v[:2+len(bootID())], 0xff, 0xff, 0xff, 0xff),
		"other groups":   encodeResume(bootID(), NewBitmap(3), NewBitmap(3)),
		"no boot stored": encodeResume("", fast, NewBitmap(1)),
	} {
		if got := decodeResume(bad, groups); !bytes.Equal(got, empty) {
			t.Errorf("%s: trusted %x", name, got)
		}
	}
}
