package share

import (
	"cmp"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// What a Server answers for besides its catalog's files: the manifests of
// the folders it shares (FolderCatalog), and the files it is downloading
// (Partials, see swarm.go). Both answer Have and GetRange like a file.

// FolderCatalog is a Catalog that also holds folder manifests (the Index
// does). The server asserts it on its catalog.
type FolderCatalog interface {
	// LookupFolder returns the encoding and tree of the manifest with
	// root, if it is a folder shared in scope.
	LookupFolder(root [32]byte, scope Scope) ([]byte, Tree, bool)
}

// partialsBox holds a Server's Partials.
type partialsBox struct{ p Partials }

// SetPartials makes the server answer for the files p gives, in their
// scopes: the node's download manager, once it runs. nil stops it.
func (s *Server) SetPartials(p Partials) {
	s.partials.Store(&partialsBox{p})
}

// partialsOf returns the server's Partials, or nil.
func (s *Server) partialsOf() Partials {
	if b := s.partials.Load(); b != nil {
		return b.p
	}
	return nil
}

// serverPartials is the field a Server keeps them in.
type serverPartials = atomic.Pointer[partialsBox]

// folder returns the manifest with root shared in the stream's scope.
func (c *serverConn) folder(root [32]byte) ([]byte, Tree, bool) {
	fc, ok := c.s.catalog.(FolderCatalog)
	if !ok {
		return nil, Tree{}, false
	}
	return fc.LookupFolder(root, c.scope)
}

// partial returns the download of root servable in the stream's scope.
func (c *serverConn) partial(root [32]byte) (*PartialFile, bool) {
	p := c.s.partialsOf()
	if p == nil {
		return nil, false
	}
	return p.Partial(root, c.scope)
}

// extraHave answers Have for a folder manifest or a partial file; ok is
// false if root is neither.
func (c *serverConn) extraHave(id uint64, root [32]byte) (ok bool, err error) {
	if enc, _, ok := c.folder(root); ok {
		return true, c.w.WriteFrame(Frame{ID: id, Msg: HaveReply{Size: int64(len(enc)), Complete: true}})
	}
	if pf, ok := c.partial(root); ok {
		return true, c.w.WriteFrame(Frame{ID: id, Msg: pf.Have()})
	}
	return false, nil
}

// extraRange answers GetRange for a folder manifest or a partial file; ok
// is false if root is neither.
func (c *serverConn) extraRange(id uint64, m GetRange) (ok bool, err error) {
	if enc, tree, ok := c.folder(m.Root); ok {
		size := int64(len(enc))
		if err := CheckRange(size, m.First, m.Count); err != nil {
			return true, c.fail(id, CodeBadRequest, err.Error())
		}
		proof, err := tree.AppendProof(c.proof[:0], m.First, m.Count)
		if err != nil {
			return true, c.fail(id, CodeInternal, "bad manifest outboard")
		}
		c.proof = proof
		off, n := m.First*GroupSize, RangeDataSize(size, m.First, m.Count)
		return true, c.writeRange(id, m, proof, enc[off:off+n])
	}
	pf, ok := c.partial(m.Root)
	if !ok {
		return false, nil
	}
	return true, c.partialRange(id, m, pf)
}

// writeRange writes a whole range reply from memory.
func (c *serverConn) writeRange(id uint64, m GetRange, proof, data []byte) error {
	w := c.w
	if err := w.writeNoFlush(Frame{ID: id, Msg: RangeReply{First: m.First, Count: m.Count, ProofLen: len(proof), DataLen: int64(len(data))}}); err != nil {
		return err
	}
	if _, err := w.bw.Write(proof); err != nil {
		return fmt.Errorf("writing range proof: %w", err)
	}
	if _, err := w.bw.Write(data); err != nil {
		return fmt.Errorf("writing range data: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing range data: %w", err)
	}
	return nil
}

// partialRange serves a range of a file being downloaded: only groups the
// download verified, each verified again as it is read back from the
// partial file, before any of its bytes is sent. A range that is not all
// held is refused with CodeNotHeld; a group that fails its check after the
// reply began breaks the stream (the peer gets none of its bytes).
func (c *serverConn) partialRange(id uint64, m GetRange, pf *PartialFile) error {
	size := pf.Size()
	if err := CheckRange(size, m.First, m.Count); err != nil {
		return c.fail(id, CodeBadRequest, err.Error())
	}
	proof, ok := pf.AppendProof(c.proof[:0], m.First, m.Count)
	if !ok {
		return c.fail(id, CodeNotHeld, "")
	}
	c.proof = proof
	f, err := pf.Open()
	if err != nil {
		return c.fail(id, CodeNotHeld, "")
	}
	defer f.Close()
	cp, busy, err := c.q.takeChunk(c.reserveChunk)
	if err != nil {
		return err
	}
	if busy {
		c.s.stats.busy.Add(1)
		return c.fail(id, CodeBusy, "no memory for a range now")
	}
	defer c.q.endRange()
	root := pf.Root()
	proofAt := func(i int64) []byte {
		off := 0
		for j := m.First; j < i; j++ {
			off += GroupProofSize(size, j)
		}
		return proof[off : off+GroupProofSize(size, i)]
	}
	// read reads into *cp the groups from g on that fit it and verifies
	// each; it returns their bytes and how many groups they are.
	read := func(cp *[]byte, g int64) (int64, int64, error) {
		chunk := *cp
		k := min(m.First+m.Count-g, int64(len(chunk))/GroupSize)
		n := RangeDataSize(size, g, k)
		if _, err := f.ReadAt(chunk[:n], g*GroupSize); err != nil {
			return 0, 0, fmt.Errorf("reading partial file: %w", err)
		}
		for i := g; i < g+k; i++ {
			off, gn := GroupBounds(size, i)
			rel := off - g*GroupSize
			if err := VerifyGroup(root, size, i, chunk[rel:rel+gn], proofAt(i)); err != nil {
				return 0, 0, err
			}
		}
		return n, k, nil
	}
	got, k, err := read(cp, m.First)
	if err != nil {
		c.q.putChunk(cp)
		c.s.log.Info("partial file does not verify", slog.Any("err", err))
		return c.fail(id, CodeNotHeld, "")
	}
	if err := c.writeRangeHead(id, m, proof, RangeDataSize(size, m.First, m.Count)); err != nil {
		c.q.putChunk(cp)
		return err
	}
	// The queue writes each verified chunk while the next is read.
	for g := m.First; ; {
		if err := c.q.sendChunk(cp, got); err != nil {
			return fmt.Errorf("writing range data: %w", err)
		}
		if g += k; g == m.First+m.Count {
			return nil
		}
		if cp, _, err = c.q.takeChunk(c.reserveChunk); err != nil || cp == nil {
			return fmt.Errorf("writing range data: %w", cmp.Or(err, errNoChunk))
		}
		if got, k, err = read(cp, g); err != nil {
			c.q.putChunk(cp)
			c.s.log.Info("partial file does not verify", slog.Any("err", err))
			return fmt.Errorf("serving partial file: %w", err)
		}
	}
}
