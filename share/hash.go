package share

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/bao"
)

// EmptyRoot is the root of the empty file. An empty file has no groups, so
// nothing is transferred for it: a downloader only compares roots.
var EmptyRoot = blake3.Sum256(nil)

// Tree is what indexing a file yields: its root, its size and its Bao
// outboard. The outboard is OutboardHeaderSize bytes of little-endian size
// followed by the parent nodes of the BLAKE3 tree, down to 256 KiB groups, in
// pre-order: 64 bytes per group, less 56. It is all a holder needs, besides
// the file, to prove any group to a downloader.
//
// A Tree is a plain value; its methods only read it and are safe for
// concurrent use.
type Tree struct {
	// Root is the BLAKE3-256 hash of the file, as b3sum prints it.
	Root [32]byte
	// Size is the file size in bytes.
	Size int64
	// Outboard is the Bao outboard encoding with GroupSize groups.
	Outboard []byte
}

// HashReader reads exactly size bytes from r, once and in order, and returns
// their root and outboard. It returns an error wrapping ErrSizeChanged if r
// ends early or holds more than size bytes.
func HashReader(r io.Reader, size int64) (Tree, error) {
	if size < 0 {
		return Tree{}, fmt.Errorf("hashing: %w: %d", ErrBadSize, size)
	}
	if size > MaxFileSize {
		return Tree{}, fmt.Errorf("hashing: %w: %d bytes", ErrFileTooLarge, size)
	}
	ob := &bufferAt{buf: make([]byte, OutboardSize(size))}
	root, err := bao.Encode(ob, r, size, GroupLog, true)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Tree{}, fmt.Errorf("hashing: %w: fewer than %d bytes", ErrSizeChanged, size)
	}
	if err != nil {
		return Tree{}, fmt.Errorf("hashing: %w", err)
	}
	// The reader must be exhausted, or we hashed a prefix of a growing file.
	var one [1]byte
	if n, err := io.ReadFull(r, one[:]); n > 0 {
		return Tree{}, fmt.Errorf("hashing: %w: more than %d bytes", ErrSizeChanged, size)
	} else if err != io.EOF {
		return Tree{}, fmt.Errorf("hashing: %w", err)
	}
	return Tree{Root: root, Size: size, Outboard: ob.buf}, nil
}

// HashFile hashes the regular file at path in one pass. It returns an error
// wrapping ErrSizeChanged if the file changes size while it is read.
func HashFile(path string) (Tree, error) {
	f, err := os.Open(path)
	if err != nil {
		return Tree{}, fmt.Errorf("hashing file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Tree{}, fmt.Errorf("hashing file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Tree{}, fmt.Errorf("hashing file: %s is not a regular file", path)
	}
	t, err := HashReader(f, fi.Size())
	if err != nil {
		return Tree{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Groups returns the number of chunk groups in a file of size bytes. The
// empty file has none.
func Groups(size int64) int64 {
	return (size + GroupSize - 1) / GroupSize
}

// GroupBounds returns the offset and length in a file of size bytes of group
// i, which must be below Groups(size).
func GroupBounds(size, i int64) (off, n int64) {
	off = i * GroupSize
	return off, min(GroupSize, size-off)
}

// OutboardSize returns the length of the outboard of a file of size bytes.
func OutboardSize(size int64) int64 {
	return int64(bao.EncodedSize(int(size), GroupLog, true))
}

// checkOutboard reports whether t.Outboard can serve proofs for t.Size.
func (t *Tree) checkOutboard() error {
	if t.Size < 0 || t.Size > MaxFileSize ||
		int64(len(t.Outboard)) != OutboardSize(t.Size) ||
		binary.LittleEndian.Uint64(t.Outboard) != uint64(t.Size) {
		return ErrBadOutboard
	}
	return nil
}

// bufferAt is the io.WriterAt that bao.Encode fills. Encode writes the
// outboard out of order, but never past EncodedSize.
type bufferAt struct {
	buf []byte
}

func (b *bufferAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(b.buf)) {
		return 0, io.ErrShortWrite
	}
	return copy(b.buf[off:], p), nil
}
