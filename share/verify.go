package share

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"lukechampine.com/blake3/guts"
)

// This file holds the hot verification path of downloads. It computes the
// same values as bao.DecodeSlice (the tests cross-check the two on random
// inputs) but hashes the received bytes where they lie: whole 16 KiB blocks
// are handed to the BLAKE3 kernels in place, with no copy into a scratch
// buffer and no per-group allocation. On two cores every copy counts: a
// download moves each byte through Noise, the verifier, the disk and the
// whole-file check.

// simdBlock is how many bytes the BLAKE3 kernels hash in one call.
const simdBlock = guts.MaxSIMD * guts.ChunkSize

func cvFromBytes(b []byte) (cv [8]uint32) {
	_ = b[31]
	for i := range cv {
		cv[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return cv
}

// groupNode returns the BLAKE3 node (not yet finalised) of the bytes p, a
// subtree whose first chunk has index counter. p is at most GroupSize.
func groupNode(p []byte, counter uint64) guts.Node {
	var stack [54 - guts.MaxSIMD][8]uint32
	var sc uint64
	push := func(cv [8]uint32) {
		i := 0
		for sc&(1<<i) != 0 {
			cv = guts.ChainingValue(guts.ParentNode(stack[i], cv, &guts.IV, 0))
			i++
		}
		stack[i] = cv
		sc++
	}
	for len(p) > simdBlock {
		push(guts.ChainingValue(guts.CompressBuffer((*[simdBlock]byte)(p[:simdBlock]), simdBlock, &guts.IV, counter+sc*guts.MaxSIMD, 0)))
		p = p[simdBlock:]
	}
	var n guts.Node
	if len(p) == simdBlock {
		n = guts.CompressBuffer((*[simdBlock]byte)(p), simdBlock, &guts.IV, counter+sc*guts.MaxSIMD, 0)
	} else {
		var buf [simdBlock]byte // the kernels read a whole block
		copy(buf[:], p)
		n = guts.CompressBuffer(&buf, len(p), &guts.IV, counter+sc*guts.MaxSIMD, 0)
	}
	for i := bits.TrailingZeros64(sc); i < bits.Len64(sc); i++ {
		if sc&(1<<i) != 0 {
			n = guts.ParentNode(stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	return n
}

// verifyGroup checks group i (data, of the right length) of a file of size
// bytes against root using proof (the parents from the root down, the
// layout of walkProof). Lengths are the caller's to check.
func verifyGroup(root [32]byte, size, i int64, data, proof []byte) bool {
	return verifyNode(root, size, i, groupNode(data, uint64(i)*(GroupSize/guts.ChunkSize)), proof)
}

// verifyNode checks the node of group i, as groupNode computed it, against
// root using proof.
func verifyNode(root [32]byte, size, i int64, node guts.Node, proof []byte) bool {
	cv := cvFromBytes(root[:])
	flags := uint32(guts.FlagRoot)
	pos, n := uint64(0), uint64(size)
	target := uint64(i) * GroupSize
	for n > GroupSize {
		if len(proof) < NodeSize {
			return false
		}
		l, r := cvFromBytes(proof[:32]), cvFromBytes(proof[32:64])
		proof = proof[NodeSize:]
		if guts.ChainingValue(guts.ParentNode(l, r, &guts.IV, flags)) != cv {
			return false
		}
		flags = 0
		mid := uint64(1) << (bits.Len64(n-1) - 1)
		if target < pos+mid {
			cv, n = l, mid
		} else {
			cv, pos, n = r, pos+mid, n-mid
		}
	}
	node.Flags |= flags
	return len(proof) == 0 && guts.ChainingValue(node) == cv
}

// rootBuilder computes a file's BLAKE3 root from its groups, fed in order.
// Groups are equal power-of-two subtrees, merged as BLAKE3 merges chunks: a
// stack of complete subtrees, the last merge flagged root.
type rootBuilder struct {
	size   int64
	groups int64
	next   int64 // the group add expects
	stack  [64][8]uint32
	sc     uint64
	last   guts.Node
}

func newRootBuilder(size int64) *rootBuilder {
	return &rootBuilder{size: size, groups: Groups(size)}
}

// add hashes the next group, whose bytes are data.
func (b *rootBuilder) add(data []byte) {
	b.push(groupNode(data, uint64(b.next)*(GroupSize/guts.ChunkSize)))
}

// push adds the node of the next group (as groupNode computed it).
func (b *rootBuilder) push(node guts.Node) {
	b.next++
	if b.next == b.groups {
		b.last = node
		return
	}
	cv := guts.ChainingValue(node)
	i := 0
	for b.sc&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(b.stack[i], cv, &guts.IV, 0))
		i++
	}
	b.stack[i] = cv
	b.sc++
}

// root returns the root once every group was added.
func (b *rootBuilder) root() [32]byte {
	if b.groups == 0 {
		return EmptyRoot
	}
	n := b.last
	if b.sc == 0 {
		n.Flags |= guts.FlagRoot
	}
	for i := bits.TrailingZeros64(b.sc); i < bits.Len64(b.sc); i++ {
		if b.sc&(1<<i) != 0 {
			flags := uint32(0)
			if b.sc>>(i+1) == 0 {
				flags = guts.FlagRoot
			}
			n = guts.ParentNode(b.stack[i], guts.ChainingValue(n), &guts.IV, flags)
		}
	}
	return rootBytes(n)
}

// rootOf hashes size bytes from r into their BLAKE3 root (as b3sum prints
// it), reading GroupSize at a time into buf (at least GroupSize long).
func rootOf(r io.Reader, size int64, buf []byte) ([32]byte, error) {
	b := newRootBuilder(size)
	for g := range b.groups {
		_, n := GroupBounds(size, g)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return [32]byte{}, fmt.Errorf("hashing: %w", err)
		}
		b.add(buf[:n])
	}
	return b.root(), nil
}

func rootBytes(n guts.Node) (out [32]byte) {
	words := guts.CompressNode(n)
	for i := range 8 {
		binary.LittleEndian.PutUint32(out[4*i:], words[i])
	}
	return out
}
