package share

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckPrints fingerprints every group of a file whose last group is
// short, then checks the file as it is (no error), with one byte changed in
// the last group (a mismatch), and cut short (a read error, not a match).
func TestCheckPrints(t *testing.T) {
	const size = 5*GroupSize + 1000
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	groups := Groups(size)
	p := newGroupPrints(groups)
	for i := range groups {
		if p.complete() {
			t.Fatalf("complete after %d of %d groups", i, groups)
		}
		off, n := GroupBounds(size, i)
		p.record(i, p.sum(data[off:off+n]))
	}
	p.record(0, p.sum(data[:GroupSize])) // twice: still counted once
	if !p.complete() {
		t.Fatal("not complete with every group fingerprinted")
	}
	check := func() error {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return checkPrints(f, size, p)
	}
	if err := check(); err != nil {
		t.Fatalf("unchanged file: %v", err)
	}
	data[size-1] ^= 0x80
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := check(); !errors.Is(err, errPrintMismatch) {
		t.Fatalf("one byte changed in the last group: %v, want a mismatch", err)
	}
	data[size-1] ^= 0x80
	if err := os.WriteFile(path, data[:size-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := check(); err == nil || errors.Is(err, errPrintMismatch) {
		t.Fatalf("file cut short: %v, want a read error", err)
	}
}
