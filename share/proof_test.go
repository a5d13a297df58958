package share

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"lukechampine.com/blake3/bao"
)

// groupsToTest picks first, middle and last groups, all of them for small
// files.
func groupsToTest(size int64) []int64 {
	g := Groups(size)
	if g <= 6 {
		var all []int64
		for i := range g {
			all = append(all, i)
		}
		return all
	}
	return []int64{0, 1, g / 2, g - 2, g - 1}
}

func TestProofMatchesBaoSlice(t *testing.T) {
	for _, size := range testSizes {
		data := testData(size)
		tr := mustHash(t, data)
		for _, i := range groupsToTest(size) {
			off, n := GroupBounds(size, i)
			proof, err := tr.AppendProof(nil, i, 1)
			if err != nil {
				t.Fatalf("size %d group %d: %v", size, i, err)
			}
			if len(proof) != GroupProofSize(size, i) {
				t.Fatalf("size %d group %d: proof %d bytes, want %d", size, i, len(proof), GroupProofSize(size, i))
			}
			// Our proof is bao's slice encoding without header and data.
			var slice bytes.Buffer
			err = bao.ExtractSlice(&slice, bytes.NewReader(data[off:off+n]), bytes.NewReader(tr.Outboard), GroupLog, uint64(off), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			want = binary.LittleEndian.AppendUint64(want, uint64(size))
			want = append(want, proof...)
			want = append(want, data[off:off+n]...)
			if !bytes.Equal(slice.Bytes(), want) {
				t.Fatalf("size %d group %d: proof differs from bao.ExtractSlice", size, i)
			}
			if err := VerifyGroup(tr.Root, size, i, data[off:off+n], proof); err != nil {
				t.Errorf("size %d group %d: %v", size, i, err)
			}
		}
	}
}

func TestVerifyRange(t *testing.T) {
	for _, size := range testSizes {
		g := Groups(size)
		if g == 0 {
			continue
		}
		data := testData(size)
		tr := mustHash(t, data)
		ranges := [][2]int64{{0, g}, {0, 1}, {g - 1, 1}, {g / 2, (g + 1) / 2}}
		for _, r := range ranges {
			first, count := r[0], r[1]
			proof, err := tr.AppendProof([]byte("prefix"), first, count)
			if err != nil {
				t.Fatal(err)
			}
			proof = proof[len("prefix"):]
			if len(proof) != RangeProofSize(size, first, count) {
				t.Fatalf("size %d range %v: proof %d bytes, want %d", size, r, len(proof), RangeProofSize(size, first, count))
			}
			rd := data[first*GroupSize : first*GroupSize+RangeDataSize(size, first, count)]
			if err := VerifyRange(tr.Root, size, first, count, rd, proof); err != nil {
				t.Errorf("size %d range %v: %v", size, r, err)
			}
		}
	}
}

func TestVerifyRejectsFlippedBits(t *testing.T) {
	for _, size := range []int64{1, 1023, GroupSize, GroupSize + 1, 5*GroupSize + 3} {
		data := testData(size)
		tr := mustHash(t, data)
		for _, i := range groupsToTest(size) {
			off, n := GroupBounds(size, i)
			proof, _ := tr.AppendProof(nil, i, 1)
			group := bytes.Clone(data[off : off+n])
			for _, bit := range []int64{0, 8*n - 1, 4 * n} {
				group[bit/8] ^= 1 << (bit % 8)
				if err := VerifyGroup(tr.Root, size, i, group, proof); !errors.Is(err, ErrMismatch) {
					t.Errorf("size %d group %d data bit %d: err %v", size, i, bit, err)
				}
				group[bit/8] ^= 1 << (bit % 8)
			}
			for bit := 0; bit < 8*len(proof); bit += 8*NodeSize/2 + 3 {
				proof[bit/8] ^= 1 << (bit % 8)
				if err := VerifyGroup(tr.Root, size, i, group, proof); !errors.Is(err, ErrMismatch) {
					t.Errorf("size %d group %d proof bit %d: err %v", size, i, bit, err)
				}
				proof[bit/8] ^= 1 << (bit % 8)
			}
			wrongRoot := tr.Root
			wrongRoot[31] ^= 0x80
			if err := VerifyGroup(wrongRoot, size, i, group, proof); !errors.Is(err, ErrMismatch) {
				t.Errorf("size %d group %d wrong root: err %v", size, i, err)
			}
			if err := VerifyGroup(tr.Root, size, i, group, proof); err != nil {
				t.Errorf("size %d group %d after restore: %v", size, i, err)
			}
		}
	}
}

func TestVerifyRejectsBadShapes(t *testing.T) {
	size := int64(3*GroupSize + 100)
	data := testData(size)
	tr := mustHash(t, data)
	proof, _ := tr.AppendProof(nil, 1, 1)
	group := data[GroupSize : 2*GroupSize]
	tests := []struct {
		name        string
		size, i     int64
		data, proof []byte
		want        error
	}{
		{"short data", size, 1, group[:len(group)-1], proof, ErrBadProof},
		{"long data", size, 1, data[GroupSize : 2*GroupSize+1], proof, ErrBadProof},
		{"short proof", size, 1, group, proof[:len(proof)-1], ErrBadProof},
		{"long proof", size, 1, group, append(bytes.Clone(proof), 0), ErrBadProof},
		{"group past end", size, 4, group, proof, ErrBadRange},
		{"negative group", size, -1, group, proof, ErrBadRange},
		{"wrong group", size, 2, group, proof, ErrMismatch},
		{"lying size", size + GroupSize, 1, group, proof, ErrBadProof},
		{"empty file", 0, 0, nil, nil, ErrBadRange},
		{"huge file", MaxFileSize + 1, 0, nil, nil, ErrBadRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyGroup(tr.Root, tt.size, tt.i, tt.data, tt.proof); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
	// A peer that claims a different size with a proof shaped for it is
	// still caught by the root.
	bigger := size + 2*GroupSize
	fake := make([]byte, GroupProofSize(bigger, 1))
	if err := VerifyGroup(tr.Root, bigger, 1, group, fake); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong size: err %v", err)
	}
	if err := VerifyRange(tr.Root, size, 0, 0, nil, nil); !errors.Is(err, ErrBadRange) {
		t.Errorf("empty range: err %v", err)
	}
	if err := VerifyRange(tr.Root, size, 0, MaxRangeGroups+1, nil, nil); !errors.Is(err, ErrBadRange) {
		t.Errorf("long range: err %v", err)
	}
	if err := VerifyRange(tr.Root, size, 0, 2, data[:2*GroupSize], proof); !errors.Is(err, ErrBadProof) {
		t.Errorf("short range proof: err %v", err)
	}
}

func TestAppendProofBadOutboard(t *testing.T) {
	tr := mustHash(t, testData(3*GroupSize))
	bad := []Tree{
		{Size: tr.Size, Outboard: tr.Outboard[:len(tr.Outboard)-1]},
		{Size: tr.Size + 1, Outboard: tr.Outboard},
		{Size: -1, Outboard: tr.Outboard},
		{Size: tr.Size},
	}
	for _, b := range bad {
		if _, err := b.AppendProof(nil, 0, 1); !errors.Is(err, ErrBadOutboard) {
			t.Errorf("size %d outboard %d: err %v", b.Size, len(b.Outboard), err)
		}
	}
	if _, err := tr.AppendProof(nil, 2, 2); !errors.Is(err, ErrBadRange) {
		t.Errorf("range past end: err %v", err)
	}
}

// FuzzVerifyGroup feeds peer-controlled data and proofs to the verifier: it
// must never panic and must accept only the real group.
func FuzzVerifyGroup(f *testing.F) {
	size := int64(2*GroupSize + 1000)
	data := testData(size)
	tr := mustHash(f, data)
	proof, _ := tr.AppendProof(nil, 2, 1)
	real := data[2*GroupSize:]
	f.Add(int64(2), real, proof)
	f.Add(int64(0), real, proof)
	f.Add(int64(2), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, i int64, d, p []byte) {
		err := VerifyGroup(tr.Root, size, i, d, p)
		if err == nil && (i != 2 || !bytes.Equal(d, real) || !bytes.Equal(p, proof)) {
			t.Fatalf("accepted a forged group %d", i)
		}
	})
}

func BenchmarkVerifyGroup(b *testing.B) {
	data := benchData()
	size := int64(len(data))
	tr := mustHash(b, data)
	i := Groups(size) / 3
	off, n := GroupBounds(size, i)
	proof, _ := tr.AppendProof(nil, i, 1)
	b.SetBytes(n)
	for b.Loop() {
		if err := VerifyGroup(tr.Root, size, i, data[off:off+n], proof); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendProof(b *testing.B) {
	tr := mustHash(b, benchData())
	var buf []byte
	for b.Loop() {
		buf, _ = tr.AppendProof(buf[:0], 100, MaxRangeGroups)
	}
}
