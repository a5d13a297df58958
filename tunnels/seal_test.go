package tunnels

import (
	"errors"
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
	vals := map[[32]byte]string{}
	for name, v := range map[string][32]byte{
		"root":   root,
		"target": TargetForRoot(root),
		"search": SearchHash(root),
		"psk":    filePSK(root),
		"chat":   TargetForChatID(root[:]),
	} {
		if prev, ok := vals[v]; ok {
			t.Errorf("%s equals %s", name, prev)
		}
		vals[v] = name
	}
	// Every node must derive the same target from a root, and a root one
	// bit apart must give another.
	target := TargetForRoot(root)
	if TargetForRoot([32]byte{42}) != target {
		t.Error("not deterministic")
	}
	other := root
	other[31] ^= 1
	if TargetForRoot(other) == target {
		t.Error("a root one bit apart has the same target")
	}
}
