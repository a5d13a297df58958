package tunnels

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

// suite is the Noise cipher suite of every session and sealed message.
var suite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// Prologues name the protocol and the kind of session, so that a session
// of one kind can never complete as another.
const (
	filePrologue = "kith/tunnel/1 file Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s"
	chatPrologue = "kith/tunnel/1 chat Noise_XK_25519_ChaChaPoly_BLAKE2s"
)

// GenerateKey returns a fresh X25519 key pair from crypto/rand: a
// searcher's ephemeral reply key, or a chat identity's static session key.
func GenerateKey() (noise.DHKey, error) {
	k, err := suite.GenerateKeypair(rand.Reader)
	if err != nil {
		return noise.DHKey{}, fmt.Errorf("generating X25519 key: %w", err)
	}
	return k, nil
}

// OpenFileSession runs the downloader's side of a file tunnel's handshake
// (Noise_NNpsk0 with a pre-shared key derived from root) over rw, the end
// of a tunnel, and returns the session. The downloader shows no identity;
// the holder proves it knows root. It blocks until the handshake is done,
// ctx ends, or HandshakeTimeout passes if ctx has no deadline; it clears
// rw's deadlines when done. On error rw is closed (reset if it can be) and
// the error wraps ErrHandshake.
func OpenFileSession(ctx context.Context, rw io.ReadWriteCloser, root [32]byte) (*Session, error) {
	return handshake(ctx, rw, fileConfig(root, true), false)
}

// AcceptFileSession runs the holder's side of a file tunnel's handshake
// over rw for the file with root; see OpenFileSession. A downloader that
// does not know root fails here with an error wrapping ErrHandshake and is
// told nothing: rw is just closed.
//
// Early data in the downloader's first message (StartFileSession) is
// returned by the session's first Reads, before any frame.
func AcceptFileSession(ctx context.Context, rw io.ReadWriteCloser, root [32]byte) (*Session, error) {
	return handshake(ctx, rw, fileConfig(root, false), true)
}

// fileConfig is the Noise configuration of a file session for root.
func fileConfig(root [32]byte, initiator bool) noise.Config {
	psk := filePSK(root)
	return noise.Config{
		CipherSuite:  suite,
		Pattern:      noise.HandshakeNN,
		Initiator:    initiator,
		Prologue:     []byte(filePrologue),
		PresharedKey: psk[:],
	}
}

// StartFileSession is OpenFileSession without the wait: it returns the
// downloader's side of a file session over rw at once, and the handshake
// runs with the session's first Write and Read. The first Write, if it is
// at most MaxEarlyData bytes, rides in the handshake's first message, and
// the holder answers it with the handshake's reply: the handshake and the
// first requests (a Have, and the group that proves the size) take one
// round trip instead of two. That early data is encrypted under the key
// derived from root (Noise_NNpsk0 allows a payload in its first message),
// without forward secrecy and open to replay by whoever saw it: it must
// say nothing that anyone who knows root may not know, and ask for
// nothing a replay could abuse (a replayed first message gets answers
// that only the first downloader's ephemeral key opens).
//
// A holder takes the early data as the first bytes it reads and says so in
// its reply; a holder that does not (a kith from before early data) gets
// it again as the session's first frame, a round trip later.
//
// A longer first Write, and every later Write (and CloseWrite), waits for
// the handshake to finish, whatever the write deadline. Read waits for the
// first Write and then reads the handshake's reply: a session that is only
// read never starts. An error of the handshake wraps ErrHandshake, resets
// rw and is returned by every later Read and Write.
func StartFileSession(rw io.ReadWriteCloser, root [32]byte) (*Session, error) {
	hs, err := noise.NewHandshakeState(fileConfig(root, true))
	if err != nil {
		abort(rw)
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return &Session{rw: rw, start: &lazyStart{hs: hs, sent: make(chan struct{}), done: make(chan struct{})}}, nil
}

// lazyStart is the handshake of a session from StartFileSession until it
// is done: message 1 goes with the first Write, message 2 is read by the
// first Read.
type lazyStart struct {
	hs    *noise.HandshakeState
	wrote bool   // message 1 is written or failed; guarded by the session's wmu
	early []byte // the early data message 1 carried, until message 2 is read

	sent     chan struct{} // closed once message 1 is written or failed, or on Close
	sentOnce sync.Once
	done     chan struct{} // closed once the handshake is done or failed
	doneOnce sync.Once
	err      error // why it failed, set before done is closed
}

func (l *lazyStart) markSent() { l.sentOnce.Do(func() { close(l.sent) }) }

// finish ends the handshake with err (nil: done) and wakes its waiters;
// only the first call counts.
func (l *lazyStart) finish(err error) {
	l.doneOnce.Do(func() {
		l.err = err
		close(l.done)
	})
}

// ok reports whether the handshake is done without error.
func (l *lazyStart) ok() bool {
	select {
	case <-l.done:
		return l.err == nil
	default:
		return false
	}
}

// writeHello writes the handshake's first message with early data (which
// may be nil), once; the caller holds wmu.
func (s *Session) writeHello(early []byte) error {
	l := s.start
	l.wrote = true
	l.early = bytes.Clone(early)
	defer l.markSent()
	buf := make([]byte, 2, 2+MaxHandshakeMsg)
	msg, _, _, err := l.hs.WriteMessage(buf, early)
	if err == nil {
		binary.BigEndian.PutUint16(msg, uint16(len(msg)-2))
		_, err = s.rw.Write(msg)
	}
	if err != nil {
		err = fmt.Errorf("%w: writing message: %w", ErrHandshake, err)
		s.failStart(err)
		return err
	}
	return nil
}

// failStart ends the lazy handshake with err and resets the stream.
func (s *Session) failStart(err error) {
	s.start.finish(err)
	s.start.markSent()
	abort(s.rw)
}

// awaitStart makes the lazy handshake go on from a Write of p, the caller
// holding wmu: the first Write sends message 1, carrying p if it fits
// (took reports that p went as early data); then it waits for the
// handshake to finish.
func (s *Session) awaitStart(p []byte) (took bool, err error) {
	l := s.start
	select {
	case <-l.done:
		return false, l.err
	default:
	}
	if !l.wrote {
		early := p
		if len(early) > MaxEarlyData {
			early = nil
		}
		if err := s.writeHello(early); err != nil {
			return false, err
		}
		if early != nil {
			return true, nil
		}
	}
	<-l.done
	return false, l.err
}

// readWelcome finishes the lazy handshake from the Read side: it waits
// for message 1 to be written and reads message 2. The caller holds rmu.
func (s *Session) readWelcome() error {
	l := s.start
	select {
	case <-l.done:
		return l.err
	case <-l.sent:
	}
	select {
	case <-l.done:
		return l.err // message 1 failed, or the session closed
	default:
	}
	var hdr [2]byte
	fail := func(err error) error {
		err = fmt.Errorf("%w: %w", ErrHandshake, err)
		s.failStart(err)
		if s.closed.Load() {
			err = fmt.Errorf("reading tunnel: %w", ErrSessionClosed)
		}
		return err
	}
	if _, err := io.ReadFull(s.rw, hdr[:]); err != nil {
		return fail(fmt.Errorf("reading message: %w", err))
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxHandshakeMsg {
		return fail(fmt.Errorf("message of %d bytes", n))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(s.rw, body); err != nil {
		return fail(fmt.Errorf("reading message: %w", err))
	}
	payload, cs1, cs2, err := l.hs.ReadMessage(nil, body)
	if err == nil && cs1 == nil {
		err = errors.New("handshake not finished by message 2")
	}
	if err != nil {
		return fail(err)
	}
	s.send, s.recv = newFrameCipher(cs1), newFrameCipher(cs2)
	if len(l.early) > 0 && len(payload) == 0 {
		// The holder dropped the early data: send it again as the first
		// frame. Writers wait for l.done, so no frame goes before it.
		frame, err := s.seal(make([]byte, 0, len(l.early)+FrameOverhead), l.early)
		if err == nil {
			_, err = s.rw.Write(frame)
		}
		if err != nil {
			return fail(fmt.Errorf("sending early data again: %w", err))
		}
	}
	l.early = nil
	l.finish(nil)
	return l.err // Close may have come first
}

// OpenChatSession runs the initiator's side of a chat tunnel's handshake
// (Noise_XK) over rw: the initiator knows the responder's static X25519
// key remote and authenticates with its own static key pair local, which
// only the responder learns. Blocking, timeout and errors are as for
// OpenFileSession.
func OpenChatSession(ctx context.Context, rw io.ReadWriteCloser, local noise.DHKey, remote [32]byte) (*Session, error) {
	return handshake(ctx, rw, noise.Config{
		Pattern:       noise.HandshakeXK,
		Initiator:     true,
		Prologue:      []byte(chatPrologue),
		StaticKeypair: local,
		PeerStatic:    remote[:],
	}, false)
}

// AcceptChatSession runs the responder's side of a chat tunnel's handshake
// over rw with the responder's static key pair local. The initiator's
// static key is then Session.PeerStatic; deciding whether to talk to it is
// the caller's job. Blocking, timeout and errors are as for
// OpenFileSession.
func AcceptChatSession(ctx context.Context, rw io.ReadWriteCloser, local noise.DHKey) (*Session, error) {
	return handshake(ctx, rw, noise.Config{
		Pattern:       noise.HandshakeXK,
		Initiator:     false,
		Prologue:      []byte(chatPrologue),
		StaticKeypair: local,
	}, false)
}

// earlyTaken is the payload of a holder's message 2 that says it took the
// early data of message 1. A holder that did not (a kith from before
// early data) sends none, and the downloader sends the early data again
// as the session's first frame.
var earlyTaken = []byte{1}

// handshake runs cfg over rw: each handshake message is a frame of a
// 2-byte big-endian length and the message. The initiator's first message
// may carry early data (StartFileSession): a responder with acceptEarly
// keeps it for the session's first Reads and says so in its reply
// (earlyTaken); others drop it.
func handshake(ctx context.Context, rw io.ReadWriteCloser, cfg noise.Config, acceptEarly bool) (s *Session, err error) {
	cfg.CipherSuite = suite
	hs, err := noise.NewHandshakeState(cfg)
	if err != nil {
		abort(rw)
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, HandshakeTimeout)
		defer cancel()
	}
	stop := interruptOnDone(ctx, rw)
	defer func() {
		if interrupted := stop(); interrupted && err == nil {
			err = fmt.Errorf("%w: %w", ErrHandshake, context.Cause(ctx))
		}
		if err != nil {
			abort(rw)
			s = nil
		}
	}()

	var send, recv *noise.CipherState
	var early []byte
	buf := make([]byte, 2+MaxHandshakeMsg)
	for write := cfg.Initiator; send == nil; write = !write {
		var cs1, cs2 *noise.CipherState
		if write {
			var msg, payload []byte
			if early != nil {
				payload = earlyTaken // message 2 says the early data was read
			}
			msg, cs1, cs2, err = hs.WriteMessage(buf[:2], payload)
			if err != nil {
				return nil, fmt.Errorf("%w: writing message: %w", ErrHandshake, err)
			}
			binary.BigEndian.PutUint16(msg, uint16(len(msg)-2))
			if _, err = rw.Write(msg); err != nil {
				return nil, fmt.Errorf("%w: writing message: %w", ErrHandshake, ctxErr(ctx, err))
			}
		} else {
			if _, err = io.ReadFull(rw, buf[:2]); err != nil {
				return nil, fmt.Errorf("%w: reading message: %w", ErrHandshake, ctxErr(ctx, err))
			}
			n := int(binary.BigEndian.Uint16(buf))
			if n > MaxHandshakeMsg {
				return nil, fmt.Errorf("%w: message of %d bytes", ErrHandshake, n)
			}
			if _, err = io.ReadFull(rw, buf[2:2+n]); err != nil {
				return nil, fmt.Errorf("%w: reading message: %w", ErrHandshake, ctxErr(ctx, err))
			}
			var payload []byte
			if payload, cs1, cs2, err = hs.ReadMessage(nil, buf[2:2+n]); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
			}
			if acceptEarly && !cfg.Initiator && early == nil && len(payload) > 0 {
				early = payload // ReadMessage allocated it
			}
		}
		if cs1 != nil {
			send, recv = cs1, cs2 // cs1 carries initiator to responder
			if !cfg.Initiator {
				send, recv = cs2, cs1
			}
		}
	}
	s = &Session{rw: rw, send: newFrameCipher(send), recv: newFrameCipher(recv), plain: early}
	if ps := hs.PeerStatic(); len(ps) == 32 {
		s.peerStatic = append([]byte(nil), ps...)
	}
	return s, nil
}

// ctxErr prefers the context's error to the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

type deadliner interface {
	SetDeadline(time.Time) error
}

type closeWriter interface {
	CloseWrite() error
}

type resetter interface {
	Reset() error
}

// interruptOnDone makes blocked I/O on rw return once ctx is done: through
// a deadline if rw has deadlines, else by closing rw. stop ends the watch,
// clears the deadline, and reports whether rw was interrupted.
func interruptOnDone(ctx context.Context, rw io.ReadWriteCloser) (stop func() bool) {
	dl, hasDeadline := rw.(deadliner)
	done := make(chan struct{})
	stopWatch := context.AfterFunc(ctx, func() {
		defer close(done)
		if hasDeadline {
			dl.SetDeadline(time.Unix(1, 0))
		} else {
			abort(rw)
		}
	})
	return func() bool {
		interrupted := !stopWatch()
		if interrupted {
			<-done
		}
		if hasDeadline {
			dl.SetDeadline(time.Time{})
		}
		return interrupted || ctx.Err() != nil
	}
}

// abort ends rw abruptly: Reset if it has one (a libp2p stream), else
// Close, after asking a TCP connection to send a reset rather than a
// clean end.
func abort(rw io.Closer) {
	if r, ok := rw.(resetter); ok {
		r.Reset()
		return
	}
	if l, ok := rw.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	rw.Close()
}

// Session is an end-to-end encrypted stream over a tunnel, made by
// OpenFileSession, AcceptFileSession, OpenChatSession or AcceptChatSession.
//
// On the wire a session is a sequence of frames, each a 2-byte big-endian
// length and a ChaCha20-Poly1305 ciphertext of at most 65535 bytes
// including its 16-byte tag. An empty plaintext marks the end of the
// stream, so a reader can tell a clean end from a dropped link.
//
// Like a net.Conn, a Session may be read by one goroutine while another
// writes it, and Close may be called at any time from any goroutine;
// concurrent Reads (or concurrent Writes) are serialised. The zero value
// is not usable.
type Session struct {
	rw         io.ReadWriteCloser
	peerStatic []byte
	closed     atomic.Bool

	rmu   sync.Mutex
	recv  *frameCipher
	rbuf  []byte  // one frame body and up to 2 bytes of the next header
	hdr   [2]byte // the current frame's length prefix
	hdrN  int     // bytes of hdr read
	bodyN int     // bytes of the current frame read into rbuf
	plain []byte  // decrypted bytes in rbuf not yet returned
	rerr  error   // sticky read error

	wmu     sync.Mutex
	send    *frameCipher
	wbuf    []byte
	werr    error // sticky write error
	finSent bool

	// start, for a session from StartFileSession, is its handshake, done
	// by the first Write and Read; nil otherwise.
	start *lazyStart
}

// PeerStatic returns the peer's static X25519 public key: for a chat
// session the initiator's key as seen by the responder (or the responder's
// key the initiator asked for); nil for a file session.
func (s *Session) PeerStatic() []byte { return s.peerStatic }

// Read reads decrypted bytes. It returns io.EOF after the peer's
// authenticated end of stream (CloseWrite or Close), an error wrapping
// ErrTruncated and io.ErrUnexpectedEOF if the tunnel ended without one,
// and an error wrapping ErrBadFrame if a frame fails to authenticate;
// those errors are final. An error of the underlying stream, such as a
// deadline, is returned as is and the Read may be retried.
func (s *Session) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if len(s.plain) > 0 {
		n := copy(p, s.plain)
		s.plain = s.plain[n:]
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.start != nil && s.rerr == nil {
		if err := s.readWelcome(); err != nil {
			s.rerr = err
		}
	}
	for {
		if s.rerr != nil {
			return 0, s.rerr
		}
		n, err := s.readFrame(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// readFrame reads and decrypts one frame. If p holds the whole plaintext
// it is decrypted straight into p; otherwise in place in rbuf and served
// from s.plain. Progress is kept in s, so an interrupted read resumes.
func (s *Session) readFrame(p []byte) (int, error) {
	for s.hdrN < 2 {
		m, err := s.rw.Read(s.hdr[s.hdrN:])
		s.hdrN += m
		if s.hdrN < 2 && err != nil {
			return 0, s.readErr(err)
		}
	}
	n := int(binary.BigEndian.Uint16(s.hdr[:]))
	if n < 16 {
		s.rerr = fmt.Errorf("reading tunnel: %w: frame of %d bytes", ErrBadFrame, n)
		return 0, s.rerr
	}
	if s.rbuf == nil {
		s.rbuf = make([]byte, noise.MaxMsgLen+2)
	}
	for s.bodyN < n {
		// Read the next frame's length along with this frame, if it is
		// there, to save a read call per frame.
		m, err := s.rw.Read(s.rbuf[s.bodyN : n+2])
		s.bodyN += m
		if s.bodyN < n && err != nil {
			return 0, s.readErr(err)
		}
	}
	s.hdrN = copy(s.hdr[:], s.rbuf[n:s.bodyN])
	s.bodyN = 0
	ct := s.rbuf[:n]
	direct := len(p) >= n-16
	dst := ct[:0]
	if direct {
		dst = p[:0]
	}
	out, err := s.recv.open(dst, ct)
	if err != nil {
		s.rerr = fmt.Errorf("reading tunnel: %w", err)
		return 0, s.rerr
	}
	if len(out) == 0 {
		s.rerr = io.EOF
		return 0, io.EOF
	}
	if direct {
		return len(out), nil
	}
	m := copy(p, out)
	s.plain = out[m:]
	return m, nil
}

// readErr turns an error of the underlying stream into the session's:
// an end without the end-of-stream mark is final truncation.
func (s *Session) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.rerr = fmt.Errorf("reading tunnel: %w", errors.Join(ErrTruncated, io.ErrUnexpectedEOF))
		return s.rerr
	}
	if s.closed.Load() {
		return fmt.Errorf("reading tunnel: %w", ErrSessionClosed)
	}
	return fmt.Errorf("reading tunnel: %w", err)
}

// Write encrypts p and writes it in frames of at most MaxFramePayload
// bytes, up to SessionWriteBatch frames per write to the underlying
// stream. It blocks until the underlying stream took every byte or
// failed. After an error, including a deadline, the stream's framing is
// lost and every later Write returns the same error, as with crypto/tls.
func (s *Session) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != nil {
		return 0, s.werr
	}
	if s.finSent {
		return 0, fmt.Errorf("writing tunnel: %w", ErrSessionClosed)
	}
	if s.start != nil && !s.start.ok() {
		took, err := s.awaitStart(p)
		if err != nil {
			s.werr = err
			return 0, err
		}
		if took {
			return len(p), nil
		}
	}
	written := 0
	for len(p) > 0 {
		batch := min(len(p), SessionWriteBatch*MaxFramePayload)
		frames := (batch + MaxFramePayload - 1) / MaxFramePayload
		if need := batch + frames*FrameOverhead; cap(s.wbuf) < need {
			s.wbuf = make([]byte, 0, need)
		}
		buf := s.wbuf[:0]
		for off := 0; off < batch; {
			chunk := min(batch-off, MaxFramePayload)
			var err error
			if buf, err = s.seal(buf, p[off:off+chunk]); err != nil {
				s.werr = err
				return written, err
			}
			off += chunk
		}
		if _, err := s.rw.Write(buf); err != nil {
			s.werr = fmt.Errorf("writing tunnel: %w", err)
			if s.closed.Load() {
				s.werr = fmt.Errorf("writing tunnel: %w", ErrSessionClosed)
			}
			return written, s.werr
		}
		written += batch
		p = p[batch:]
	}
	return written, nil
}

// seal appends one frame carrying plain to buf, encrypting in place into
// buf's spare capacity.
func (s *Session) seal(buf, plain []byte) ([]byte, error) {
	at := len(buf)
	buf, err := s.send.seal(append(buf, 0, 0), plain)
	if err != nil {
		return buf[:at], fmt.Errorf("writing tunnel: %w", err)
	}
	binary.BigEndian.PutUint16(buf[at:], uint16(len(buf)-at-2))
	return buf, nil
}

// frameCipher is one direction of a session's transport encryption: Noise's
// CipherState for ChaChaPoly with its implicit nonce, rebuilt on the
// handshake's key so that a frame costs no allocation (flynn/noise builds
// each nonce on the heap). Frames must be opened in the order they were
// sealed. It rekeys every RekeyInterval frames, as Noise's Rekey does, and
// refuses to go past MaxSessionFrames. It is not safe for concurrent use.
type frameCipher struct {
	aead  cipher.AEAD
	n     uint64
	nonce [chacha20poly1305.NonceSize]byte
}

func newFrameCipher(cs *noise.CipherState) *frameCipher {
	return newFrameCipherKey(cs.UnsafeKey(), cs.Nonce())
}

func newFrameCipherKey(k [32]byte, n uint64) *frameCipher {
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		panic(err) // only for a key that is not 32 bytes
	}
	return &frameCipher{aead: aead, n: n}
}

// nextNonce returns the nonce for this frame: 32 zero bits and n in
// little-endian, as Noise specifies for ChaChaPoly.
func (c *frameCipher) nextNonce() ([]byte, error) {
	if c.n >= MaxSessionFrames {
		return nil, ErrSessionExhausted
	}
	binary.LittleEndian.PutUint64(c.nonce[4:], c.n)
	return c.nonce[:], nil
}

// advance counts a frame and rekeys at every RekeyInterval frames.
func (c *frameCipher) advance() {
	c.n++
	if c.n%RekeyInterval == 0 {
		c.rekey()
	}
}

// rekey is Noise's REKEY(k): the first 32 bytes of encrypting 32 zero bytes
// with nonce 2^64-1.
func (c *frameCipher) rekey() {
	var zeros [32 + chacha20poly1305.Overhead]byte
	binary.LittleEndian.PutUint64(c.nonce[4:], math.MaxUint64)
	k := c.aead.Seal(zeros[:0], c.nonce[:], zeros[:32], nil)
	aead, err := chacha20poly1305.New(k[:32])
	if err != nil {
		panic(err)
	}
	c.aead = aead
}

// seal appends the encryption of plain to dst.
func (c *frameCipher) seal(dst, plain []byte) ([]byte, error) {
	nonce, err := c.nextNonce()
	if err != nil {
		return dst, err
	}
	dst = c.aead.Seal(dst, nonce, plain, nil)
	c.advance()
	return dst, nil
}

// open appends the decryption of ct to dst, which may be ct[:0].
func (c *frameCipher) open(dst, ct []byte) ([]byte, error) {
	nonce, err := c.nextNonce()
	if err != nil {
		return nil, err
	}
	out, err := c.aead.Open(dst, nonce, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	c.advance()
	return out, nil
}

// writeFin sends the end-of-stream mark once. The caller holds wmu.
func (s *Session) writeFin() error {
	if s.finSent || s.werr != nil {
		return s.werr
	}
	if s.start != nil && !s.start.ok() {
		if _, err := s.awaitStart(nil); err != nil {
			s.werr = err
			return err
		}
	}
	s.finSent = true
	var frame [FrameOverhead]byte
	buf, err := s.seal(frame[:0], nil)
	if err == nil {
		_, err = s.rw.Write(buf)
	}
	if err != nil {
		s.werr = fmt.Errorf("writing end of tunnel: %w", err)
	}
	return s.werr
}

// CloseWrite ends the stream in the write direction: the peer's Read
// returns io.EOF once it has read everything written before. The
// underlying stream is half-closed too if it supports CloseWrite. Reading
// goes on. It waits for a Write in progress.
func (s *Session) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.writeFin()
	if cw, ok := s.rw.(closeWriter); ok {
		if cerr := cw.CloseWrite(); err == nil && cerr != nil {
			err = fmt.Errorf("closing tunnel for writing: %w", cerr)
		}
	}
	return err
}

// Close sends the end-of-stream mark, unless a Write is in progress (the
// peer then sees a truncated stream, which it is), waiting at most
// CloseNotifyTimeout if the underlying stream has deadlines, and closes
// the underlying stream. Blocked Reads and Writes return. Close may be
// called more than once and concurrently with Read and Write.
func (s *Session) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.start != nil {
		// A handshake not done ends here: no mark can be sent.
		s.start.finish(fmt.Errorf("%w: %w", ErrHandshake, ErrSessionClosed))
		s.start.markSent()
	}
	if s.wmu.TryLock() {
		if !s.finSent && s.werr == nil && (s.start == nil || s.start.ok()) {
			if d, ok := s.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
				d.SetWriteDeadline(time.Now().Add(CloseNotifyTimeout))
			}
			s.writeFin()
		}
		s.finSent = true
		s.wmu.Unlock()
	}
	if err := s.rw.Close(); err != nil {
		return fmt.Errorf("closing tunnel: %w", err)
	}
	return nil
}

// Reset ends the session at once without the end-of-stream mark, so the
// peer sees the stream as broken: the underlying stream is reset if it can
// be, else closed.
func (s *Session) Reset() error {
	s.closed.Store(true)
	if s.start != nil {
		s.start.finish(fmt.Errorf("%w: %w", ErrHandshake, ErrSessionClosed))
		s.start.markSent()
	}
	abort(s.rw)
	return nil
}

// SetDeadline sets the read and write deadlines of the underlying stream,
// or returns ErrNoDeadline if it has none. See Write for what a write
// deadline does to the session.
func (s *Session) SetDeadline(t time.Time) error {
	if d, ok := s.rw.(deadliner); ok {
		return d.SetDeadline(t)
	}
	return ErrNoDeadline
}

// SetReadDeadline sets the read deadline of the underlying stream, or
// returns ErrNoDeadline if it has none. A Read that times out may be
// retried.
func (s *Session) SetReadDeadline(t time.Time) error {
	if d, ok := s.rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return ErrNoDeadline
}

// SetWriteDeadline sets the write deadline of the underlying stream, or
// returns ErrNoDeadline if it has none. A Write that times out breaks the
// session's write direction for good.
func (s *Session) SetWriteDeadline(t time.Time) error {
	if d, ok := s.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return ErrNoDeadline
}
