package share

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/bao"
)

// testSizes covers the boundaries of chunks and groups and trees of a few
// levels.
var testSizes = []int64{
	0, 1, 1023, 1024, 1025,
	GroupSize - 1, GroupSize, GroupSize + 1,
	2 * GroupSize, 3*GroupSize + 17, 5 * GroupSize,
	3<<20 + 12345, 8 << 20,
}

// testData returns size deterministic pseudo-random bytes.
func testData(size int64) []byte {
	r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16)})
	b := make([]byte, size)
	r.Read(b)
	return b
}

// vectorInput is the input of the official BLAKE3 test vectors.
func vectorInput(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func mustHash(t testing.TB, data []byte) Tree {
	t.Helper()
	tr, err := HashReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestHashVectors(t *testing.T) {
	// From the official BLAKE3 test_vectors.json (lukechampine.com/blake3
	// testdata/vectors.json), first 32 bytes of the unkeyed hash.
	vectors := []struct {
		n    int
		hash string
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
		{1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
		{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
		{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
		{8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
		{31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
		{100000, "d93c23eedaf165a7e0be908ba86f1a7a520d568d2d13cde787c8580c5c72cc54"},
	}
	for _, v := range vectors {
		tr := mustHash(t, vectorInput(v.n))
		if got := hex.EncodeToString(tr.Root[:]); got != v.hash {
			t.Errorf("len %d: root %s, want %s", v.n, got, v.hash)
		}
	}
	if EmptyRoot != mustHash(t, nil).Root {
		t.Error("EmptyRoot differs from the hash of nothing")
	}
}

func TestHashMatchesPlainBLAKE3(t *testing.T) {
	for _, size := range testSizes {
		data := testData(size)
		tr := mustHash(t, data)
		if want := blake3.Sum256(data); tr.Root != want {
			t.Errorf("size %d: root %x, want %x", size, tr.Root, want)
		}
		if tr.Size != size || int64(len(tr.Outboard)) != OutboardSize(size) {
			t.Errorf("size %d: tree size %d outboard %d", size, tr.Size, len(tr.Outboard))
		}
		// The outboard is a standard Bao outboard with our group size.
		if !bao.VerifyBuf(data, tr.Outboard, GroupLog, tr.Root) {
			t.Errorf("size %d: bao rejects our outboard", size)
		}
		if want := int64(OutboardHeaderSize); size > 0 {
			want += NodeSize * (Groups(size) - 1)
			if OutboardSize(size) != want {
				t.Errorf("size %d: OutboardSize %d, want %d", size, OutboardSize(size), want)
			}
		}
	}
}

func TestHashSizeChanged(t *testing.T) {
	data := testData(GroupSize + 10)
	for _, size := range []int64{GroupSize + 9, GroupSize + 11, 0, 1 << 20} {
		_, err := HashReader(bytes.NewReader(data), size)
		if !errors.Is(err, ErrSizeChanged) {
			t.Errorf("size %d of %d: err %v, want ErrSizeChanged", size, len(data), err)
		}
	}
	if _, err := HashReader(bytes.NewReader(nil), -1); !errors.Is(err, ErrBadSize) {
		t.Errorf("negative size: err %v", err)
	}
	if _, err := HashReader(bytes.NewReader(nil), MaxFileSize+1); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("huge size: err %v", err)
	}
	broken := errors.New("disk on fire")
	if _, err := HashReader(io.MultiReader(bytes.NewReader(data[:100]), errReader{broken}), int64(len(data))); !errors.Is(err, broken) {
		t.Errorf("read error: err %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	data := testData(GroupSize*2 + 5)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHash(t, data); tr.Root != want.Root || tr.Size != want.Size || !bytes.Equal(tr.Outboard, want.Outboard) {
		t.Errorf("HashFile differs from HashReader")
	}
	if _, err := HashFile(dir); err == nil {
		t.Error("hashed a directory")
	}
	if _, err := HashFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err %v", err)
	}
}

func TestGroups(t *testing.T) {
	tests := []struct{ size, groups int64 }{
		{0, 0}, {1, 1}, {GroupSize - 1, 1}, {GroupSize, 1}, {GroupSize + 1, 2}, {MaxFileSize, MaxGroups},
	}
	for _, tt := range tests {
		if got := Groups(tt.size); got != tt.groups {
			t.Errorf("Groups(%d) = %d, want %d", tt.size, got, tt.groups)
		}
	}
	if GroupSize != 256<<10 || ChunkSize<<GroupLog != GroupSize {
		t.Error("group constants disagree")
	}
	// The deepest path in the largest file must fit MaxTreeDepth.
	if got := GroupProofSize(MaxFileSize, MaxGroups-1); got != MaxGroupProofSize {
		t.Errorf("deepest proof %d bytes, want %d", got, MaxGroupProofSize)
	}
}

// benchData is the 64 MiB input of the hashing benchmarks, made on first use
// so that tests and fuzzing do not pay for it.
var benchData = sync.OnceValue(func() []byte { return testData(64 << 20) })

func BenchmarkIndexHash(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := HashReader(bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBLAKE3Plain(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		blake3.Sum256(data)
	}
}
