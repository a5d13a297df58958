package share

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/bao"
)

// baoVerifyGroup is the reference: bao.DecodeSlice on the one-group slice.
func baoVerifyGroup(root [32]byte, size, i int64, data, proof []byte) bool {
	off, n := GroupBounds(size, i)
	var hdr [OutboardHeaderSize]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(size))
	slice := io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(proof), bytes.NewReader(data))
	ok, err := bao.DecodeSlice(io.Discard, slice, GroupLog, uint64(off), uint64(n), root)
	return ok && err == nil
}

func randBytes(seed uint64, n int64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}

// TestFastVerifyMatchesBao checks the in-place verifier and the root hasher
// against lukechampine's bao and blake3 on many sizes, groups and single
// bit flips.
func TestFastVerifyMatchesBao(t *testing.T) {
	sizes := []int64{0, 1, 1023, 1024, 1025, 16383, 16384, 16385, GroupSize - 1, GroupSize, GroupSize + 1,
		2 * GroupSize, 3*GroupSize + 17, 5 * GroupSize, 8*GroupSize - 1, 8*GroupSize + 1, 13*GroupSize + 999}
	for k, size := range sizes {
		data := randBytes(uint64(k), size)
		tree, err := HashReader(bytes.NewReader(data), size)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, GroupSize)
		got, err := rootOf(bytes.NewReader(data), size, buf)
		if err != nil || got != blake3.Sum256(data) || got != tree.Root {
			t.Fatalf("size %d: rootOf %x, want %x (%v)", size, got, blake3.Sum256(data), err)
		}
		for i := range Groups(size) {
			off, n := GroupBounds(size, i)
			g := data[off : off+n]
			proof, err := tree.AppendProof(nil, i, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !verifyGroup(tree.Root, size, i, g, proof) || !baoVerifyGroup(tree.Root, size, i, g, proof) {
				t.Fatalf("size %d group %d: honest group rejected", size, i)
			}
			flip := func(b []byte, bit int) []byte {
				c := bytes.Clone(b)
				c[bit/8] ^= 1 << (bit % 8)
				return c
			}
			for _, bit := range []int{0, int(n*8) - 1, int(n * 4)} {
				bad := flip(g, bit)
				if verifyGroup(tree.Root, size, i, bad, proof) != baoVerifyGroup(tree.Root, size, i, bad, proof) ||
					verifyGroup(tree.Root, size, i, bad, proof) {
					t.Fatalf("size %d group %d: flipped data bit %d accepted or disagrees with bao", size, i, bit)
				}
			}
			if len(proof) > 0 {
				for _, bit := range []int{0, len(proof)*8 - 1} {
					bad := flip(proof, bit)
					if verifyGroup(tree.Root, size, i, g, bad) {
						t.Fatalf("size %d group %d: flipped proof bit %d accepted", size, i, bit)
					}
				}
			}
		}
	}
}

func BenchmarkVerifyGroupBao(b *testing.B) {
	data := randBytes(1, 64*GroupSize)
	tree, _ := HashReader(bytes.NewReader(data), int64(len(data)))
	proof, _ := tree.AppendProof(nil, 5, 1)
	g := data[5*GroupSize : 6*GroupSize]
	b.SetBytes(GroupSize)
	for b.Loop() {
		if !baoVerifyGroup(tree.Root, tree.Size, 5, g, proof) {
			b.Fatal("rejected")
		}
	}
}
