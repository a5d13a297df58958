package f2f

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"kith/f2f/pb"
	"kith/internal/store"
)

// inviteErrors are the sentinels a pasted invite can end in. Each case of
// TestInviteRejected must match exactly one of them.
var inviteErrors = []error{
	ErrInviteEmpty, ErrInviteGarbled, ErrInviteTruncated, ErrInviteSignature,
	ErrInviteVersion, ErrInviteTooLarge, ErrInviteOwn, ErrAlreadyFriend, ErrBadName,
}

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, id
}

func mustAddrs(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// tcpAddrs returns n distinct loopback TCP addresses, starting at port base.
func tcpAddrs(t testing.TB, base, n int) []ma.Multiaddr {
	t.Helper()
	ss := make([]string, n)
	for i := range ss {
		ss[i] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", base+i)
	}
	return mustAddrs(t, ss...)
}

func newInviteText(t testing.TB, key crypto.PrivKey, name string, addrs []ma.Multiaddr) string {
	t.Helper()
	text, err := NewInvite(key, addrs, name)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// decodeInvite undoes the text form by hand: prefix, base64url, uvarint
// length, SignedInvite. It is strict, unlike ParseInvite's tolerance of a
// dangling base64 character, so a test cannot lean on the code under test.
func decodeInvite(t testing.TB, text string) (*pb.SignedInvite, *pb.Invite) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(text), InvitePrefix))
	if err != nil {
		t.Fatalf("decoding invite: %v", err)
	}
	n, k := binary.Uvarint(raw)
	if k <= 0 || uint64(len(raw)-k) != n {
		t.Fatalf("invite length header %d (%d bytes) does not match %d bytes", n, k, len(raw)-k)
	}
	var s pb.SignedInvite
	if err := proto.Unmarshal(raw[k:], &s); err != nil {
		t.Fatal(err)
	}
	var w pb.Invite
	if err := proto.Unmarshal(s.Invite, &w); err != nil {
		t.Fatal(err)
	}
	return &s, &w
}

// encodeInvite is the inverse of decodeInvite.
func encodeInvite(t testing.TB, s *pb.SignedInvite) string {
	t.Helper()
	b, err := proto.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	raw := binary.AppendUvarint(nil, uint64(len(b)))
	return InvitePrefix + base64.RawURLEncoding.EncodeToString(append(raw, b...))
}

// signBody encodes w and signs it with key the way NewInvite does.
func signBody(t testing.TB, key crypto.PrivKey, w *pb.Invite) *pb.SignedInvite {
	t.Helper()
	body, err := proto.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.Sign(append([]byte(inviteSigDomain), body...))
	if err != nil {
		t.Fatal(err)
	}
	return &pb.SignedInvite{Invite: body, Signature: sig}
}

// friendsSnapshot renders a friend list for comparison, persistent fields only.
func friendsSnapshot(fs []Friend) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s name=%q addrs=%v added=%s seen=%s\n",
			f.ID, f.Name, f.Addrs, f.Added.Format(time.RFC3339Nano), f.LastSeen.Format(time.RFC3339Nano))
	}
	return b.String()
}

func openTestDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{NoSync: true, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openTestFriends(t testing.TB, db *bolt.DB, self peer.ID) *Friends {
	t.Helper()
	f, err := OpenFriends(db, self)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestInviteRoundTrip(t *testing.T) {
	key, id := newKey(t)
	addrs := mustAddrs(t, "/ip4/192.0.2.1/tcp/4001", "/ip6/::1/udp/4001/quic-v1", "/dns4/example.org/tcp/443")
	before := time.Now().Truncate(time.Second)
	text := newInviteText(t, key, "Ada Lovelace ☕", addrs)
	if !strings.HasPrefix(text, InvitePrefix) || strings.ContainsAny(text, " \t\r\n") || len(text) > MaxInviteText {
		t.Fatalf("invite text %q is not one short line starting with %q", text, InvitePrefix)
	}
	for _, pasted := range []string{text, "  " + text + "\r\n", "\t" + text} {
		inv, err := ParseInvite(pasted)
		if err != nil {
			t.Fatalf("ParseInvite(%q): %v", pasted, err)
		}
		if inv.ID != id {
			t.Errorf("ID = %s, want %s", inv.ID, id)
		}
		if inv.Name != "Ada Lovelace ☕" {
			t.Errorf("Name = %q", inv.Name)
		}
		if !slices.EqualFunc(inv.Addrs, addrs, ma.Multiaddr.Equal) {
			t.Errorf("Addrs = %v, want %v", inv.Addrs, addrs)
		}
		if inv.Created.Before(before) || inv.Created.After(time.Now()) {
			t.Errorf("Created = %v, want about now", inv.Created)
		}
	}

	// Through the friend list and the disk.
	path := filepath.Join(t.TempDir(), "kith.db")
	_, self := newKey(t)
	db := openTestDB(t, path)
	inv, err := ParseInvite(text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openTestFriends(t, db, self).Add(inv, ""); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTestDB(t, path)
	defer db.Close()
	got, ok := openTestFriends(t, db, self).Get(id)
	if !ok {
		t.Fatal("friend lost across reopen")
	}
	if got.Name != inv.Name || !slices.EqualFunc(got.Addrs, addrs, ma.Multiaddr.Equal) {
		t.Errorf("stored friend = %+v, want name %q addrs %v", got, inv.Name, addrs)
	}
}

func TestNewInvite(t *testing.T) {
	key, _ := newKey(t)
	t.Run("no addresses, empty name", func(t *testing.T) {
		inv, err := ParseInvite(newInviteText(t, key, "", nil))
		if err != nil {
			t.Fatal(err)
		}
		if inv.Name != "" || len(inv.Addrs) != 0 {
			t.Errorf("got %+v", inv)
		}
	})
	t.Run("addresses capped", func(t *testing.T) {
		addrs := tcpAddrs(t, 1000, MaxInviteAddrs+5)
		inv, err := ParseInvite(newInviteText(t, key, "x", addrs))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(inv.Addrs, addrs[:MaxInviteAddrs], ma.Multiaddr.Equal) {
			t.Errorf("got %d addrs %v, want the first %d", len(inv.Addrs), inv.Addrs, MaxInviteAddrs)
		}
	})
	t.Run("longest name", func(t *testing.T) {
		name := strings.Repeat("é", MaxNameLen/2)
		inv, err := ParseInvite(newInviteText(t, key, name, tcpAddrs(t, 1000, MaxInviteAddrs)))
		if err != nil {
			t.Fatal(err)
		}
		if inv.Name != name {
			t.Errorf("Name = %q", inv.Name)
		}
	})
	for _, name := range []string{strings.Repeat("a", MaxNameLen+1), "tab\there", "nl\n", "del\x7f", "\xff\xfe"} {
		t.Run(fmt.Sprintf("bad name %q", name), func(t *testing.T) {
			if _, err := NewInvite(key, nil, name); !errors.Is(err, ErrBadName) {
				t.Errorf("NewInvite(name %q) = %v, want ErrBadName", name, err)
			}
		})
	}
}

func TestInviteRejected(t *testing.T) {
	key, id := newKey(t)
	otherKey, _ := newKey(t)
	addrs := mustAddrs(t, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1")
	valid := newInviteText(t, key, "ada", addrs)
	rng := mrand.New(mrand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	body := func() *pb.Invite {
		_, w := decodeInvite(t, valid)
		return w
	}

	cases := []struct {
		name string
		text string
		// self is the node that adds the invite; zero means a stranger.
		self peer.ID
		// already puts the invite's node on the list before the case runs.
		already bool
		// as is the name passed to Add.
		as   string
		want error
	}{
		{name: "empty", text: "", want: ErrInviteEmpty},
		{name: "white space only", text: " \t\r\n \n", want: ErrInviteEmpty},
		{name: "random bytes", text: string(randBytes(300)), want: ErrInviteGarbled},
		{name: "plain words", text: "hello, please add me", want: ErrInviteGarbled},
		{name: "wrong prefix", text: "kit:" + strings.TrimPrefix(valid, InvitePrefix), want: ErrInviteGarbled},
		{name: "upper case prefix", text: "KITH:" + strings.TrimPrefix(valid, InvitePrefix), want: ErrInviteGarbled},
		{name: "not base64", text: InvitePrefix + "****", want: ErrInviteGarbled},
		{name: "standard base64 alphabet", text: InvitePrefix + "++//" + strings.TrimPrefix(valid, InvitePrefix)[4:], want: ErrInviteGarbled},
		{name: "random base64 with its length", text: func() string {
			p := randBytes(120)
			return InvitePrefix + base64.RawURLEncoding.EncodeToString(append(binary.AppendUvarint(nil, uint64(len(p))), p...))
		}(), want: ErrInviteGarbled},
		{name: "random base64, short length header", text: func() string {
			p := randBytes(120)
			p[0] = 0x10 // says 16 bytes follow; 119 do
			return InvitePrefix + base64.RawURLEncoding.EncodeToString(p)
		}(), want: ErrInviteGarbled},
		{name: "length header over the limit", text: InvitePrefix + base64.RawURLEncoding.EncodeToString(
			binary.AppendUvarint(nil, MaxInviteText+1)), want: ErrInviteGarbled},
		{name: "length header overflows", text: InvitePrefix + base64.RawURLEncoding.EncodeToString(
			[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), want: ErrInviteGarbled},
		{name: "bytes after the end", text: valid + "AAAA", want: ErrInviteGarbled},
		{name: "prefix cut", text: "kit", want: ErrInviteTruncated},
		{name: "prefix only", text: InvitePrefix, want: ErrInviteTruncated},
		{name: "half the invite", text: valid[:len(valid)/2], want: ErrInviteTruncated},
		{name: "last character missing", text: valid[:len(valid)-1], want: ErrInviteTruncated},
		{name: "signature bit flipped", text: func() string {
			s, _ := decodeInvite(t, valid)
			s.Signature[len(s.Signature)/2] ^= 0x08
			return encodeInvite(t, s)
		}(), want: ErrInviteSignature},
		{name: "signature missing", text: func() string {
			s, _ := decodeInvite(t, valid)
			s.Signature = nil
			return encodeInvite(t, s)
		}(), want: ErrInviteSignature},
		{name: "name changed, old signature", text: func() string {
			s, _ := decodeInvite(t, valid)
			w := body()
			w.Name = "eve"
			b, err := proto.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			s.Invite = b
			return encodeInvite(t, s)
		}(), want: ErrInviteSignature},
		{name: "address added, old signature", text: func() string {
			s, _ := decodeInvite(t, valid)
			w := body()
			w.Addrs = append(w.Addrs, mustAddrs(t, "/ip4/198.51.100.7/tcp/1")[0].Bytes())
			b, err := proto.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			s.Invite = b
			return encodeInvite(t, s)
		}(), want: ErrInviteSignature},
		{name: "signed by another key", text: encodeInvite(t, signBody(t, otherKey, body())), want: ErrInviteSignature},
		{name: "signed without the domain", text: func() string {
			b, err := proto.Marshal(body())
			if err != nil {
				t.Fatal(err)
			}
			sig, err := key.Sign(b)
			if err != nil {
				t.Fatal(err)
			}
			return encodeInvite(t, &pb.SignedInvite{Invite: b, Signature: sig})
		}(), want: ErrInviteSignature},
		{name: "version 2", text: func() string {
			w := body()
			w.Version = 2
			return encodeInvite(t, signBody(t, key, w))
		}(), want: ErrInviteVersion},
		{name: "signed name with control characters", text: func() string {
			w := body()
			w.Name = "bell\a"
			return encodeInvite(t, signBody(t, key, w))
		}(), want: ErrInviteGarbled},
		{name: "signed name too long", text: func() string {
			w := body()
			w.Name = strings.Repeat("n", MaxNameLen+1)
			return encodeInvite(t, signBody(t, key, w))
		}(), want: ErrInviteGarbled},
		{name: "signed, too many addresses", text: func() string {
			w := body()
			w.Addrs = nil
			for _, a := range tcpAddrs(t, 1, MaxInviteAddrs+1) {
				w.Addrs = append(w.Addrs, a.Bytes())
			}
			return encodeInvite(t, signBody(t, key, w))
		}(), want: ErrInviteGarbled},
		{name: "signed, bad address bytes", text: func() string {
			w := body()
			w.Addrs = [][]byte{{0xde, 0xad, 0xbe, 0xef}}
			return encodeInvite(t, signBody(t, key, w))
		}(), want: ErrInviteGarbled},
		{name: "bad peer ID", text: func() string {
			w := body()
			w.PeerId = []byte("not a peer id")
			return encodeInvite(t, signBody(t, key, w))
		}(), want: ErrInviteGarbled},
		{name: "too long", text: valid + strings.Repeat("A", MaxInviteText), want: ErrInviteTooLarge},
		{name: "too long garbage", text: strings.Repeat("x", MaxInviteText+1), want: ErrInviteTooLarge},
		{name: "own invite", text: valid, self: id, want: ErrInviteOwn},
		{name: "already a friend", text: valid, already: true, want: ErrAlreadyFriend},
		{name: "bad name given to Add", text: valid, as: "line\nbreak", want: ErrBadName},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kith.db")
			self := tc.self
			if self == "" {
				_, self = newKey(t)
			}
			db := openTestDB(t, path)
			defer func() { db.Close() }()
			f := openTestFriends(t, db, self)
			// A friend who is there all along, so "unchanged" is not "empty".
			_, bystander := newKey(t)
			if _, err := f.Add(Invite{ID: bystander, Name: "bob", Addrs: addrs[:1]}, ""); err != nil {
				t.Fatal(err)
			}
			if tc.already {
				inv, err := ParseInvite(valid)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Add(inv, "first"); err != nil {
					t.Fatal(err)
				}
			}
			var changes []Change
			f.Watch(func(c Change) { changes = append(changes, c) })
			before := friendsSnapshot(f.List())

			inv, err := ParseInvite(tc.text)
			if err == nil {
				_, err = f.Add(inv, tc.as)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			for _, other := range inviteErrors {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error %q also matches %q", err, other)
				}
			}

			if got := friendsSnapshot(f.List()); got != before {
				t.Errorf("failed Add changed the list:\n%s\nwant\n%s", got, before)
			}
			if len(changes) != 0 {
				t.Errorf("failed Add notified watchers: %+v", changes)
			}
			db.Close()
			db = openTestDB(t, path)
			if got := friendsSnapshot(openTestFriends(t, db, self).List()); got != before {
				t.Errorf("failed Add changed the stored list:\n%s\nwant\n%s", got, before)
			}
		})
	}
}

// TestInviteTrailingCharacter: one character pasted after a valid invite must
// not be dropped silently.
func TestInviteTrailingCharacter(t *testing.T) {
	key, _ := newKey(t)
	for n := range 3 { // n addresses give texts whose base64 lengths differ mod 4
		text := newInviteText(t, key, strings.Repeat("n", n), tcpAddrs(t, 1000, n))
		for _, c := range []string{"A", "x", "-", "_"} {
			got := text + c
			_, err := ParseInvite(got)
			if err == nil {
				t.Fatalf("%q plus %q is accepted as a valid invite", text, c)
			}
			if !errors.Is(err, ErrInviteGarbled) {
				t.Errorf("invite (base64 length %d mod 4) plus %q: %v, want ErrInviteGarbled",
					(len(text)-len(InvitePrefix))%4, c, err)
			}
		}
	}
}

// TestInviteTruncated cuts invites of several shapes at every length from the
// prefix to one short of the whole; each cut must say "truncated".
func TestInviteTruncated(t *testing.T) {
	key, _ := newKey(t)
	shapes := []struct {
		name  string
		addrs int
	}{
		{"", 0}, {"a", 0}, {"ab", 0}, {"ada", 1}, {"ada", 2}, {"a longer nickname", 3},
		{strings.Repeat("m", MaxNameLen), MaxInviteAddrs},
	}
	seen := map[int]bool{}
	for _, s := range shapes {
		text := newInviteText(t, key, s.name, tcpAddrs(t, 2000, s.addrs))
		seen[(len(text)-len(InvitePrefix))%4] = true
		t.Run(fmt.Sprintf("%d bytes", len(text)), func(t *testing.T) {
			var bad []string
			for cut := 0; cut < len(text); cut++ {
				_, err := ParseInvite(text[:cut])
				switch {
				case cut == 0:
					if !errors.Is(err, ErrInviteEmpty) {
						t.Errorf("cut at 0: %v, want ErrInviteEmpty", err)
					}
				case err == nil:
					t.Errorf("cut at %d of %d accepted", cut, len(text))
				case !errors.Is(err, ErrInviteTruncated):
					bad = append(bad, fmt.Sprintf("%d: %v", cut, err))
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d cuts of %d are not reported as truncated:\n%s", len(bad), len(text)-1, strings.Join(bad, "\n"))
			}
		})
	}
	if len(seen) != 3 {
		t.Logf("base64 lengths mod 4 covered: %v", seen)
	}
}

// TestInviteRandomPayloads: base64 of random bytes after the prefix is never
// accepted, and fails as garbled or truncated (a random length header can
// promise more bytes than follow; that is indistinguishable from a cut).
func TestInviteRandomPayloads(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	counts := map[string]int{}
	for i := range 2000 {
		p := make([]byte, 1+rng.IntN(400))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		text := InvitePrefix + base64.RawURLEncoding.EncodeToString(p)
		_, err := ParseInvite(text)
		switch {
		case err == nil:
			t.Fatalf("random payload %d accepted: %q", i, text)
		case errors.Is(err, ErrInviteGarbled):
			counts["garbled"]++
		case errors.Is(err, ErrInviteTruncated):
			counts["truncated"]++
		case errors.Is(err, ErrInviteTooLarge):
			counts["too large"]++
		default:
			t.Errorf("random payload %d: unexpected error %v", i, err)
		}
	}
	t.Logf("outcomes: %v", counts)
}

func FuzzParseInvite(f *testing.F) {
	key, _ := newKey(f)
	valid := newInviteText(f, key, "ada", mustAddrs(f, "/ip4/192.0.2.1/tcp/4001", "/ip6/::1/udp/1/quic-v1"))
	f.Add(valid)
	f.Add(newInviteText(f, key, "", nil))
	f.Add("  " + valid + "\n")
	for _, cut := range []int{1, 4, 5, 6, 7, 8, 9, 20, len(valid) / 2, len(valid) - 2, len(valid) - 1} {
		f.Add(valid[:cut])
	}
	f.Add(valid + "A")
	f.Add(valid + "AAAA")
	f.Add("")
	f.Add(InvitePrefix)
	f.Add("hello")
	f.Add(InvitePrefix + "////")
	f.Add(InvitePrefix + base64.RawURLEncoding.EncodeToString([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}))
	f.Add(string([]byte{0, 1, 2, 0xff, 'k', 'i', 't', 'h', ':'}))

	f.Fuzz(func(t *testing.T, text string) {
		inv, err := ParseInvite(text)
		if err != nil {
			if inv.ID != "" || inv.Name != "" || inv.Addrs != nil {
				t.Fatalf("error %v with a non-zero invite %+v", err, inv)
			}
			return
		}
		if err := CheckName(inv.Name); err != nil {
			t.Fatalf("accepted name %q: %v", inv.Name, err)
		}
		if len(inv.Addrs) > MaxInviteAddrs {
			t.Fatalf("accepted %d addresses", len(inv.Addrs))
		}
		if len(text) > MaxInviteText {
			t.Fatalf("accepted %d characters", len(text))
		}
		if err := inv.ID.Validate(); err != nil {
			t.Fatalf("accepted peer ID: %v", err)
		}
		// Verify the signature again, outside ParseInvite.
		s, w := decodeLenient(t, text)
		pub, err := inv.ID.ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := pub.Verify(append([]byte(inviteSigDomain), s.Invite...), s.Signature); err != nil || !ok {
			t.Fatalf("accepted invite does not verify: %v", err)
		}
		if peer.ID(w.PeerId) != inv.ID || w.Name != inv.Name || len(w.Addrs) != len(inv.Addrs) || w.Version != InviteVersion {
			t.Fatalf("accepted invite %+v does not match its signed body %v", inv, w)
		}
		again, err := ParseInvite(text)
		if err != nil || again.ID != inv.ID || again.Name != inv.Name {
			t.Fatalf("second parse differs: %+v, %v", again, err)
		}
	})
}

// decodeLenient decodes an invite ParseInvite accepted. It tolerates the one
// dangling base64 character ParseInvite drops (see TestInviteTrailingCharacter)
// and base64 whose unused last bits are set, which ParseInvite also accepts.
func decodeLenient(t *testing.T, text string) (*pb.SignedInvite, *pb.Invite) {
	t.Helper()
	enc := strings.TrimPrefix(strings.TrimSpace(text), InvitePrefix)
	if len(enc)%4 == 1 {
		enc = enc[:len(enc)-1]
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("accepted invite is not base64: %v", err)
	}
	return decodeInvite(t, InvitePrefix+base64.RawURLEncoding.EncodeToString(raw))
}

// TestInviteWrapped: an invite broken over lines (as mail clients do) is
// read whole, whatever its length.
func TestInviteWrapped(t *testing.T) {
	key, id := newKey(t)
	for n := range 4 { // base64 lengths of every residue mod 4
		text := newInviteText(t, key, strings.Repeat("n", n), tcpAddrs(t, 1000, n))
		for _, br := range []string{"\n", "\r\n"} {
			wrapped := text[:40] + br + text[40:]
			inv, err := ParseInvite(wrapped)
			switch {
			case errors.Is(err, ErrInviteTruncated):
				t.Fatalf("invite with base64 length %d mod 4 wrapped with %q: %v", (len(text)-len(InvitePrefix))%4, br, err)
			case err == nil:
				if inv.ID != id {
					t.Errorf("wrapped invite read as %s, want %s", inv.ID, id)
				}
			default:
				t.Errorf("wrapped invite: %v, want it read whole", err)
			}
		}
	}
}

// TestInviteNoVersion: a body without a version field is not "from a newer
// kith"; telling the user to upgrade would send them the wrong way.
func TestInviteNoVersion(t *testing.T) {
	key, _ := newKey(t)
	_, w := decodeInvite(t, newInviteText(t, key, "ada", nil))
	w.Version = 0
	for name, text := range map[string]string{
		"empty SignedInvite": InvitePrefix + "AA",
		"signed, version 0":  encodeInvite(t, signBody(t, key, w)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseInvite(text)
			if errors.Is(err, ErrInviteVersion) {
				t.Fatalf("%q gives %v", text, err)
			}
			if !errors.Is(err, ErrInviteGarbled) {
				t.Errorf("%q: %v, want ErrInviteGarbled", text, err)
			}
		})
	}
}
