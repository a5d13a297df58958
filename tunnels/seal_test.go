package tunnels

import (
	"errors"
	"math"
	"path"
	"reflect"
	"strings"
	"testing"
)

func testResults(n int) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = Result{Name: strings.Repeat("é", MaxNameLen/2), Size: int64(i) << 30, Root: [32]byte{byte(i), 1}}
	}
	return out
}

func TestSealOpen(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 3, MaxFilesPerResult} {
		want := testResults(n)
		sealed, err := Seal([32]byte(key.Public), want)
		if err != nil {
			t.Fatalf("%d results: %v", n, err)
		}
		if (len(sealed)-sealHandshakeBytes)%SealPad != 0 || len(sealed) > MaxSealedResults {
			t.Errorf("%d results: sealed length %d", n, len(sealed))
		}
		got, err := Open(key, sealed)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%d results: got %v, %v", n, got, err)
		}
		// The plaintext must not appear in what relays carry.
		if n > 0 && strings.Contains(string(sealed), want[0].Name) {
			t.Error("name in clear")
		}
		// Sealing twice gives different bytes (fresh ephemeral key).
		again, _ := Seal([32]byte(key.Public), want)
		if string(again) == string(sealed) {
			t.Error("two seals are equal")
		}
	}
	// One or two results pad to the same length.
	a, _ := Seal([32]byte(key.Public), testResults(1)[:1])
	b, _ := Seal([32]byte(key.Public), []Result{{Name: "x", Size: 1}})
	if len(a) != len(b) {
		t.Errorf("padding: %d and %d bytes", len(a), len(b))
	}
}

func TestOpenWrongKeyOrTampered(t *testing.T) {
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	sealed, err := Seal([32]byte(key.Public), testResults(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(other, sealed); !errors.Is(err, ErrSealedInvalid) {
		t.Errorf("wrong key: %v", err)
	}
	for _, i := range []int{0, 31, 32, 40, len(sealed) - 1} {
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 1
		if _, err := Open(key, bad); !errors.Is(err, ErrSealedInvalid) {
			t.Errorf("flip at %d: %v", i, err)
		}
	}
	for _, n := range []int{0, 47, 48 + SealPad - 1, len(sealed) + 1} {
		if _, err := Open(key, make([]byte, n)); !errors.Is(err, ErrSealedInvalid) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	key, _ := GenerateKey()
	pub := [32]byte(key.Public)
	cases := map[string][]Result{
		"too many":   testResults(MaxFilesPerResult + 1),
		"empty name": {{Name: ""}},
		"long name":  {{Name: strings.Repeat("a", MaxNameLen+1)}},
		"slash":      {{Name: "a/b"}},
		"backslash":  {{Name: `a\b`}},
		"dotdot":     {{Name: ".."}},
		"control":    {{Name: "a\nb"}},
		"not utf8":   {{Name: "a\xffb"}},
		"negative":   {{Name: "a", Size: -1}},
	}
	for name, rs := range cases {
		if _, err := Seal(pub, rs); !errors.Is(err, ErrTooManyResults) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A low-order reply key cannot be sealed to.
	if _, err := Seal([32]byte{}, testResults(1)); err == nil {
		t.Error("sealed to the zero key")
	}
}

func TestDerivedHashesDiffer(t *testing.T) {
	root := [32]byte{42}
	target, search, psk, chat := TargetForRoot(root), SearchHash(root), filePSK(root), TargetForChatID(root[:])
	// The search hash is the shortest: no value may share its prefix.
	vals := map[[SearchHashLen]byte]string{}
	for name, v := range map[string][]byte{
		"root":   root[:],
		"target": target[:],
		"search": search[:],
		"psk":    psk[:],
		"chat":   chat[:],
	} {
		v := [SearchHashLen]byte(v[:SearchHashLen])
		if prev, ok := vals[v]; ok {
			t.Errorf("%s equals %s", name, prev)
		}
		vals[v] = name
	}
	// Every node must derive the same target from a root, and a root one
	// bit apart must give another.
	if TargetForRoot([32]byte{42}) != target {
		t.Error("not deterministic")
	}
	other := root
	other[31] ^= 1
	if TargetForRoot(other) == target {
		t.Error("a root one bit apart has the same target")
	}
}

// TestSealForRootOneBlock: an answer to a search by root is one
// SealRootPad block whatever the name's length, so relays cannot tell
// files apart by it; a long name arrives shortened, its extension kept.
func TestSealForRootOneBlock(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "holiday.mkv", strings.Repeat("x", 75) + ".iso",
		strings.Repeat("é", 60) + ".flac", strings.Repeat("日本", MaxNameLen/6), strings.Repeat("n", MaxNameLen)} {
		for _, size := range []int64{0, 1 << 40, math.MaxInt64} {
			r := Result{Name: name, Size: size, Root: [32]byte{7, 7}}
			sealed, err := SealForRoot([32]byte(key.Public), r)
			if err != nil {
				t.Fatalf("name of %d bytes, size %d: %v", len(name), size, err)
			}
			if len(sealed) != sealHandshakeBytes+SealRootPad {
				t.Fatalf("name of %d bytes, size %d: sealed in %d bytes, want %d", len(name), size, len(sealed), sealHandshakeBytes+SealRootPad)
			}
			got, err := Open(key, sealed)
			if err != nil || len(got) != 1 {
				t.Fatalf("name of %d bytes: opened %v, %v", len(name), got, err)
			}
			g := got[0]
			if g.Size != size || g.Root != r.Root || !validName(g.Name) {
				t.Fatalf("opened %+v, sealed %+v", g, r)
			}
			if len(name) < 60 && g.Name != name {
				t.Errorf("short name %q arrived as %q", name, g.Name)
			}
			if ext := path.Ext(name); ext != "" && !strings.HasSuffix(g.Name, ext) {
				t.Errorf("%q lost its extension: %q", name, g.Name)
			}
		}
	}
}

func TestShortenName(t *testing.T) {
	for _, c := range []struct {
		name string
		n    int
		want string
	}{
		{"abc.txt", 7, "abc.txt"},
		{"abcdef.txt", 9, "ab….txt"},
		{"éééé", 6, "é…"},             // é is 2 bytes: a cut in one is moved back
		{"ab.verylongext", 6, "ab.…"}, // an extension too long to keep is cut like the rest
		{"abcdef", 3, "…"},
	} {
		if got := shortenName(c.name, c.n); got != c.want || len(got) > c.n {
			t.Errorf("shortenName(%q, %d) = %q, want %q", c.name, c.n, got, c.want)
		}
	}
}
