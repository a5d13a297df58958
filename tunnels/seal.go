package tunnels

import (
	"encoding/binary"
	"fmt"
	"math"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flynn/noise"
	"google.golang.org/protobuf/proto"
	"lukechampine.com/blake3"

	"kith/tunnels/pb"
)

// Key-derivation contexts. Each derived value has its own context, so that
// none can be matched against another: a relay that sees a search by hash
// and a tunnel request for the same file cannot tell they are related.
const (
	pskContext         = "kith 2026 tunnel psk v1"
	fileTargetContext  = "kith 2026 tunnel target file v1"
	chatTargetContext  = "kith 2026 tunnel target chat v1"
	searchHashContext  = "kith 2026 search root hash v1"
	sealPrologue       = "kith/router/1 sealed results"
	sealLenPrefix      = 2
	sealHandshakeBytes = 32 + 16 // Noise N: e, then the payload's tag
)

// TargetForRoot returns the TunnelRequest target of the file with root: a
// BLAKE3 key derivation from the root, so relays never see the root.
func TargetForRoot(root [32]byte) [32]byte {
	return derive(fileTargetContext, root[:])
}

// TargetForChatID returns the TunnelRequest target of the chat identity
// whose public key is pub.
func TargetForChatID(pub []byte) [32]byte {
	return derive(chatTargetContext, pub)
}

// SearchHash returns the value carried by a Search for root, so that a file
// can be searched for by root without relays learning the root: the first
// SearchHashLen bytes of a BLAKE3 key derivation from the root (a sender
// of the whole 32 bytes, as before, is understood: see searchFromWire).
func SearchHash(root [32]byte) [SearchHashLen]byte {
	full := derive(searchHashContext, root[:])
	return [SearchHashLen]byte(full[:SearchHashLen])
}

// filePSK returns the Noise pre-shared key of file tunnels to root.
func filePSK(root [32]byte) [32]byte {
	return derive(pskContext, root[:])
}

func derive(context string, src []byte) (out [32]byte) {
	blake3.DeriveKey(out[:], context, src)
	return out
}

// Result is one file found by a search.
type Result struct {
	// Name is the file's name, without any folder.
	Name string
	// Size is the file's size in bytes.
	Size int64
	// Root is the file's BLAKE3 root hash.
	Root [32]byte
}

// Seal encrypts results to replyKey, a searcher's ephemeral X25519 public
// key, as a Noise N one-way message (Noise_N_25519_ChaChaPoly_BLAKE2s), so
// that only the searcher can read them. Each Seal uses a fresh ephemeral
// key. The plaintext is padded to a multiple of SealPad. It fails with
// ErrTooManyResults if results exceed MaxFilesPerResult or a result has a
// bad name or size.
func Seal(replyKey [32]byte, results []Result) ([]byte, error) {
	return seal(replyKey, results, SealPad)
}

// SealForRoot seals r, a holder's answer to a search by root hash, like
// Seal but in exactly one block of SealRootPad bytes: its name is
// shortened to fit (shortenName) if it is too long. The searcher knows the
// root, so the name is only shown, and every answer to a search by root
// has the same length on the wire, whatever the file's name.
func SealForRoot(replyKey [32]byte, r Result) ([]byte, error) {
	empty := proto.Size(&pb.SealedResults{Files: []*pb.FoundFile{{Size: uint64(max(r.Size, 0)), Root: r.Root[:]}}})
	// The name's tag and length (one byte each, for names under 128
	// bytes) and the length prefix of the plaintext.
	r.Name = shortenName(r.Name, SealRootPad-sealLenPrefix-empty-2)
	sealed, err := seal(replyKey, []Result{r}, SealRootPad)
	if err == nil && len(sealed) != sealHandshakeBytes+SealRootPad {
		return nil, fmt.Errorf("sealing result: %w: %d bytes", ErrTooManyResults, len(sealed))
	}
	return sealed, err
}

// shortenName cuts name to at most n bytes, at a rune boundary, keeping a
// short extension: "a-long-name….mkv". Names of n bytes or fewer are
// returned as they are.
func shortenName(name string, n int) string {
	if len(name) <= n {
		return name
	}
	const mark = "…"
	ext := path.Ext(name)
	if len(ext) > 8 || len(ext)+len(mark)+1 > n {
		ext = ""
	}
	stem := name[:len(name)-len(ext)]
	keep := max(n-len(mark)-len(ext), 0)
	for keep > 0 && !utf8.RuneStart(stem[keep]) {
		keep--
	}
	return stem[:keep] + mark + ext
}

func seal(replyKey [32]byte, results []Result, pad int) ([]byte, error) {
	if len(results) > MaxFilesPerResult {
		return nil, fmt.Errorf("sealing results: %w: %d files", ErrTooManyResults, len(results))
	}
	w := &pb.SealedResults{Files: make([]*pb.FoundFile, len(results))}
	for i, r := range results {
		if !validName(r.Name) || r.Size < 0 {
			return nil, fmt.Errorf("sealing results: %w: file %d", ErrTooManyResults, i)
		}
		w.Files[i] = &pb.FoundFile{Name: r.Name, Size: uint64(r.Size), Root: r.Root[:]}
	}
	body, err := proto.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("sealing results: %w", err)
	}
	padded := (sealLenPrefix + len(body) + pad - 1) / pad * pad
	if padded+sealHandshakeBytes > MaxSealedResults {
		return nil, fmt.Errorf("sealing results: %w: %d bytes", ErrTooManyResults, padded)
	}
	plain := make([]byte, padded)
	binary.BigEndian.PutUint16(plain, uint16(len(body)))
	copy(plain[sealLenPrefix:], body)
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suite,
		Pattern:     noise.HandshakeN,
		Initiator:   true,
		Prologue:    []byte(sealPrologue),
		PeerStatic:  replyKey[:],
	})
	if err != nil {
		return nil, fmt.Errorf("sealing results: %w", err)
	}
	msg, _, _, err := hs.WriteMessage(make([]byte, 0, sealHandshakeBytes+len(plain)), plain)
	if err != nil {
		return nil, fmt.Errorf("sealing results: %w", err)
	}
	return msg, nil
}

// Open decrypts sealed results with the searcher's ephemeral key pair priv
// and checks them. Any failure wraps ErrSealedInvalid: the results were
// not for this key, were altered, or break the limits.
func Open(priv noise.DHKey, sealed []byte) ([]Result, error) {
	if len(sealed) < sealHandshakeBytes+SealRootPad || len(sealed) > MaxSealedResults ||
		(len(sealed)-sealHandshakeBytes)%SealRootPad != 0 {
		return nil, fmt.Errorf("opening results: %w: %d bytes", ErrSealedInvalid, len(sealed))
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   suite,
		Pattern:       noise.HandshakeN,
		Initiator:     false,
		Prologue:      []byte(sealPrologue),
		StaticKeypair: priv,
	})
	if err != nil {
		return nil, fmt.Errorf("opening results: %w: %w", ErrSealedInvalid, err)
	}
	plain, _, _, err := hs.ReadMessage(make([]byte, 0, len(sealed)-sealHandshakeBytes), sealed)
	if err != nil {
		return nil, fmt.Errorf("opening results: %w: %w", ErrSealedInvalid, err)
	}
	n := int(binary.BigEndian.Uint16(plain))
	if sealLenPrefix+n > len(plain) {
		return nil, fmt.Errorf("opening results: %w: length %d", ErrSealedInvalid, n)
	}
	for _, b := range plain[sealLenPrefix+n:] {
		if b != 0 {
			return nil, fmt.Errorf("opening results: %w: padding", ErrSealedInvalid)
		}
	}
	var w pb.SealedResults
	if err := proto.Unmarshal(plain[sealLenPrefix:sealLenPrefix+n], &w); err != nil {
		return nil, fmt.Errorf("opening results: %w: %w", ErrSealedInvalid, err)
	}
	if len(w.Files) > MaxFilesPerResult {
		return nil, fmt.Errorf("opening results: %w: %d files", ErrSealedInvalid, len(w.Files))
	}
	out := make([]Result, len(w.Files))
	for i, f := range w.Files {
		if !validName(f.Name) || f.Size > math.MaxInt64 || len(f.Root) != 32 {
			return nil, fmt.Errorf("opening results: %w: file %d", ErrSealedInvalid, i)
		}
		out[i] = Result{Name: f.Name, Size: int64(f.Size), Root: [32]byte(f.Root)}
	}
	return out, nil
}

// validName reports whether name is a plain file name: non-empty, at most
// MaxNameLen bytes of UTF-8, no path separator or control character, not
// "." or "..".
func validName(name string) bool {
	if name == "" || len(name) > MaxNameLen || name == "." || name == ".." ||
		!utf8.ValidString(name) || strings.ContainsAny(name, `/\`) {
		return false
	}
	return !strings.ContainsFunc(name, unicode.IsControl)
}
