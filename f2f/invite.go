package f2f

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"kith/f2f/pb"
)

// InviteVersion is the invite format this build writes and reads.
const InviteVersion = 1

// InvitePrefix starts every invite's text form.
const InvitePrefix = "kith:"

// inviteSigDomain separates invite signatures from any other use of the key.
const inviteSigDomain = "kith-invite:"

// Invite is who a node is and where it can be reached, signed by its key.
type Invite struct {
	ID      peer.ID
	Addrs   []ma.Multiaddr
	Name    string
	Created time.Time
	// IntroKey, in an introduction invite, is the seed of the one-time
	// token key (introduce.go); IntroExpires is when the token expires.
	IntroKey     []byte
	IntroExpires time.Time
}

// NewInvite signs an invite with the node key and returns its one-line text.
func NewInvite(key crypto.PrivKey, addrs []ma.Multiaddr, name string) (string, error) {
	return newInvite(key, addrs, name, nil, time.Time{})
}

// NewIntroInvite signs an introduction invite: a plain invite that also
// carries the one-time token of seed (Introductions.Issue), good until
// expires.
func NewIntroInvite(key crypto.PrivKey, addrs []ma.Multiaddr, name string, seed []byte, expires time.Time) (string, error) {
	if len(seed) != 32 {
		return "", fmt.Errorf("introduction token of %d bytes", len(seed))
	}
	return newInvite(key, addrs, name, seed, expires)
}

func newInvite(key crypto.PrivKey, addrs []ma.Multiaddr, name string, seed []byte, expires time.Time) (string, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("deriving peer ID: %w", err)
	}
	if err := CheckName(name); err != nil {
		return "", err
	}
	if len(addrs) > MaxInviteAddrs {
		addrs = addrs[:MaxInviteAddrs]
	}
	w := &pb.Invite{Version: InviteVersion, PeerId: []byte(id), Name: name, Created: time.Now().Unix()}
	if seed != nil {
		w.IntroKey, w.IntroExpires = seed, expires.Unix()
	}
	for _, a := range addrs {
		w.Addrs = append(w.Addrs, a.Bytes())
	}
	body, err := proto.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("encoding invite: %w", err)
	}
	sig, err := key.Sign(append([]byte(inviteSigDomain), body...))
	if err != nil {
		return "", fmt.Errorf("signing invite: %w", err)
	}
	signed, err := proto.Marshal(&pb.SignedInvite{Invite: body, Signature: sig})
	if err != nil {
		return "", fmt.Errorf("encoding invite: %w", err)
	}
	raw := binary.AppendUvarint(nil, uint64(len(signed)))
	raw = append(raw, signed...)
	return InvitePrefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// ParseInvite decodes and verifies an invite's text form. Surrounding white
// space is ignored. Each way of failing has its own error (see errors.go).
// It does not check whether the invite is the node's own; Friends.Add does.
func ParseInvite(text string) (Invite, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Invite{}, ErrInviteEmpty
	}
	if len(text) > MaxInviteText {
		return Invite{}, fmt.Errorf("%w: %d characters, at most %d", ErrInviteTooLarge, len(text), MaxInviteText)
	}
	if !strings.HasPrefix(text, InvitePrefix) {
		if strings.HasPrefix(InvitePrefix, text) {
			return Invite{}, ErrInviteTruncated
		}
		return Invite{}, fmt.Errorf("%w (it should start with %q)", ErrInviteGarbled, InvitePrefix)
	}
	// Mail clients wrap long lines: white space inside the invite is not
	// part of it.
	enc := strings.Join(strings.Fields(text[len(InvitePrefix):]), "")
	dangling := len(enc)%4 == 1 // a cut in the middle of a base64 quantum, or a stray character
	if dangling {
		enc = enc[:len(enc)-1]
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInviteGarbled, err)
	}
	n, k := binary.Uvarint(raw)
	if k == 0 {
		return Invite{}, ErrInviteTruncated
	}
	if k < 0 || n > MaxInviteText {
		return Invite{}, fmt.Errorf("%w: bad length header", ErrInviteGarbled)
	}
	raw = raw[k:]
	if uint64(len(raw)) < n {
		return Invite{}, fmt.Errorf("%w (%d of %d bytes)", ErrInviteTruncated, len(raw), n)
	}
	if dangling {
		return Invite{}, fmt.Errorf("%w: stray character at the end", ErrInviteGarbled)
	}
	if uint64(len(raw)) > n {
		return Invite{}, fmt.Errorf("%w: %d bytes after the end", ErrInviteGarbled, uint64(len(raw))-n)
	}
	var signed pb.SignedInvite
	if err := proto.Unmarshal(raw, &signed); err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInviteGarbled, err)
	}
	var w pb.Invite
	if err := proto.Unmarshal(signed.Invite, &w); err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInviteGarbled, err)
	}
	if w.Version == 0 {
		return Invite{}, fmt.Errorf("%w: no version", ErrInviteGarbled)
	}
	if w.Version != InviteVersion {
		return Invite{}, fmt.Errorf("%w: it is version %d, this kith reads version %d; the newer side should upgrade kith",
			ErrInviteVersion, w.Version, InviteVersion)
	}
	id, err := peer.IDFromBytes(w.PeerId)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: bad peer ID: %v", ErrInviteGarbled, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return Invite{}, fmt.Errorf("%w: peer ID holds no public key: %v", ErrInviteGarbled, err)
	}
	ok, err := pub.Verify(append([]byte(inviteSigDomain), signed.Invite...), signed.Signature)
	if err != nil || !ok {
		return Invite{}, ErrInviteSignature
	}
	// Signed, so the fields below are what the node wrote; still bound them.
	if err := CheckName(w.Name); err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInviteGarbled, err)
	}
	if len(w.Addrs) > MaxInviteAddrs {
		return Invite{}, fmt.Errorf("%w: %d addresses, at most %d", ErrInviteGarbled, len(w.Addrs), MaxInviteAddrs)
	}
	inv := Invite{ID: id, Name: w.Name, Created: time.Unix(w.Created, 0)}
	if len(w.IntroKey) > 0 {
		if len(w.IntroKey) != 32 || w.IntroExpires <= 0 {
			return Invite{}, fmt.Errorf("%w: bad introduction token", ErrInviteGarbled)
		}
		inv.IntroKey, inv.IntroExpires = w.IntroKey, time.Unix(w.IntroExpires, 0)
	}
	for _, b := range w.Addrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return Invite{}, fmt.Errorf("%w: bad address: %v", ErrInviteGarbled, err)
		}
		inv.Addrs = append(inv.Addrs, a)
	}
	return inv, nil
}

// CheckName accepts nicknames of printable UTF-8 up to MaxNameLen bytes.
func CheckName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control characters", ErrBadName)
		}
	}
	return nil
}
