package share

import (
	"fmt"
	"math/bits"
)

// A group's proof is the list of parent nodes on the path from the root of
// the file's BLAKE3 tree down to that group, root first, NodeSize bytes each:
// exactly the bytes that bao.ExtractSlice would put before the group's data
// in a slice encoding of that one group, minus the 8-byte size header (the
// verifier knows the size). A range's proof is the proofs of its groups
// concatenated in order. Neighbouring groups repeat their shared ancestors;
// that costs at most MaxTreeDepth*64 bytes per 256 KiB (0.5%) and buys
// groups that verify one by one, in any order, as they arrive.

// walkProof calls visit with the outboard offset of each parent node on the
// path from the root to group i of a file of size bytes, root first. It
// follows the pre-order layout that bao.Encode writes: a parent, then its
// left subtree, then its right subtree, where the left subtree covers the
// largest power of two of bytes that leaves the right one non-empty.
func walkProof(size, i int64, visit func(off uint64)) {
	pos, n := uint64(0), uint64(size)
	target := uint64(i) * GroupSize
	off := uint64(OutboardHeaderSize)
	for n > GroupSize {
		visit(off)
		mid := uint64(1) << (bits.Len64(n-1) - 1)
		if target < pos+mid {
			off += NodeSize
			n = mid
		} else {
			// Skip the parent and the left subtree's mid/GroupSize-1 parents.
			off += NodeSize * (mid / GroupSize)
			pos += mid
			n -= mid
		}
	}
}

// GroupProofSize returns the length of the proof of group i of a file of
// size bytes.
func GroupProofSize(size, i int64) int {
	depth := 0
	walkProof(size, i, func(uint64) { depth++ })
	return depth * NodeSize
}

// RangeProofSize returns the length of the proof of count groups from first
// in a file of size bytes.
func RangeProofSize(size, first, count int64) int {
	n := 0
	for i := first; i < first+count; i++ {
		n += GroupProofSize(size, i)
	}
	return n
}

// RangeDataSize returns the number of data bytes in count groups from first
// in a file of size bytes.
func RangeDataSize(size, first, count int64) int64 {
	return min(size, (first+count)*GroupSize) - first*GroupSize
}

// CheckRange returns an error wrapping ErrBadRange unless count groups from
// first lie inside a file of size bytes and count is between 1 and
// MaxRangeGroups.
func CheckRange(size, first, count int64) error {
	if size < 0 || size > MaxFileSize {
		return fmt.Errorf("%w: file size %d", ErrBadRange, size)
	}
	if first < 0 || count < 1 || count > MaxRangeGroups || first+count > Groups(size) {
		return fmt.Errorf("%w: %d groups from %d of %d", ErrBadRange, count, first, Groups(size))
	}
	return nil
}

// AppendProof appends the proof of count groups from first to dst and returns
// the extended slice.
func (t *Tree) AppendProof(dst []byte, first, count int64) ([]byte, error) {
	if err := t.checkOutboard(); err != nil {
		return dst, fmt.Errorf("extracting proof: %w", err)
	}
	if err := CheckRange(t.Size, first, count); err != nil {
		return dst, fmt.Errorf("extracting proof: %w", err)
	}
	for i := first; i < first+count; i++ {
		walkProof(t.Size, i, func(off uint64) {
			dst = append(dst, t.Outboard[off:off+NodeSize]...)
		})
	}
	return dst, nil
}

// VerifyGroup checks that data is group i of the file of size bytes with the
// given root, using the group's proof. It returns nil only if data is
// exactly that group; otherwise an error wrapping ErrMismatch (wrong bytes),
// ErrBadProof (wrong lengths) or ErrBadRange (no such group). It costs about
// as much as hashing data and allocates nothing.
func VerifyGroup(root [32]byte, size, i int64, data, proof []byte) error {
	if err := CheckRange(size, i, 1); err != nil {
		return fmt.Errorf("verifying group: %w", err)
	}
	_, n := GroupBounds(size, i)
	if int64(len(data)) != n || len(proof) != GroupProofSize(size, i) {
		return fmt.Errorf("verifying group %d: %w", i, ErrBadProof)
	}
	if !verifyGroup(root, size, i, data, proof) {
		return fmt.Errorf("verifying group %d: %w", i, ErrMismatch)
	}
	return nil
}

// VerifyRange checks count groups from first, laid end to end in data, with
// their concatenated proofs. It fails on the first bad group, naming it in
// the error; a caller that wants to keep the good groups of a bad range
// verifies them one by one with VerifyGroup.
func VerifyRange(root [32]byte, size, first, count int64, data, proof []byte) error {
	if err := CheckRange(size, first, count); err != nil {
		return fmt.Errorf("verifying range: %w", err)
	}
	if int64(len(data)) != RangeDataSize(size, first, count) || len(proof) != RangeProofSize(size, first, count) {
		return fmt.Errorf("verifying range: %w", ErrBadProof)
	}
	for i := first; i < first+count; i++ {
		_, n := GroupBounds(size, i)
		p := GroupProofSize(size, i)
		if err := VerifyGroup(root, size, i, data[:n], proof[:p]); err != nil {
			return err
		}
		data, proof = data[n:], proof[p:]
	}
	return nil
}
