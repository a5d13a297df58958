package sim

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
)

// TestSigCache: the shared verifier gives ed25519.Verify's answer for
// every (key, message, signature), good or tampered with in any part,
// computes each only once however many nodes ask, counts both, and holds
// at most two generations of answers.
func TestSigCache(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("a lobby message")
	sig := ed25519.Sign(key, msg)
	bad := append([]byte(nil), sig...)
	bad[0] ^= 1
	c := newSigCache(8)
	cases := []struct {
		name     string
		pub      ed25519.PublicKey
		msg, sig []byte
		want     bool
	}{
		{"good", pub, msg, sig, true},
		{"other key", other, msg, sig, false},
		{"other message", pub, []byte("a lobby messagf"), sig, false},
		{"bad signature", pub, msg, bad, false},
		// The same bytes split differently between message and signature
		// are another check, not the same one.
		{"shifted", pub, append(append([]byte(nil), msg...), sig[0]), sig[1:], false},
	}
	const askers = 100
	for range askers {
		for _, tc := range cases {
			if got := c.verify(tc.pub, tc.msg, tc.sig); got != tc.want {
				t.Fatalf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	}
	if a, n := c.asked.Load(), c.computed.Load(); a != askers*int64(len(cases)) || n != int64(len(cases)) {
		t.Fatalf("asked %d, computed %d; want %d and %d", a, n, askers*len(cases), len(cases))
	}
	for i := range 100 {
		m := []byte(fmt.Sprint("message ", i))
		if !c.verify(pub, m, ed25519.Sign(key, m)) {
			t.Fatalf("message %d does not verify", i)
		}
	}
	if n := c.len(); n > 16 {
		t.Fatalf("the cache holds %d answers, want at most 2 x 8", n)
	}
}
