package f2f

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestCreateIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	key, err := CreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if key.Type() != crypto.Ed25519 {
		t.Errorf("key type %s, want Ed25519", key.Type())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != KeyFileMode || KeyFileMode != 0o600 {
		t.Errorf("key file mode %v, want %v", st.Mode(), fs.FileMode(0o600))
	}

	loaded, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Equals(key) {
		t.Error("loaded key differs from the created one")
	}
	want, _ := peer.IDFromPrivateKey(key)
	got, err := peer.IDFromPrivateKey(loaded)
	if err != nil || got != want {
		t.Errorf("loaded peer ID %s (%v), want %s", got, err, want)
	}

	other, err := CreateIdentity(filepath.Join(t.TempDir(), "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Equals(key) {
		t.Error("two identities share a key")
	}
}

func TestCreateIdentityRefusesOverwrite(t *testing.T) {
	for name, content := range map[string][]byte{
		"a key":       nil, // filled below by CreateIdentity
		"other bytes": []byte("not a key, but still not ours to replace"),
		"empty file":  {},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			if content == nil {
				if _, err := CreateIdentity(path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, content, 0o640); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			stBefore, _ := os.Stat(path)

			key, err := CreateIdentity(path)
			if !errors.Is(err, ErrIdentityExists) {
				t.Fatalf("CreateIdentity over an existing file = %v, want ErrIdentityExists", err)
			}
			if key != nil {
				t.Error("CreateIdentity returned a key with its error")
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("refused CreateIdentity changed the file")
			}
			if st, _ := os.Stat(path); st.Mode() != stBefore.Mode() {
				t.Errorf("refused CreateIdentity changed the mode from %v to %v", stBefore.Mode(), st.Mode())
			}
		})
	}
}

func TestCreateIdentityNoDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "identity.key")
	if _, err := CreateIdentity(path); err == nil || errors.Is(err, ErrIdentityExists) {
		t.Errorf("CreateIdentity in a missing directory = %v, want an I/O error", err)
	}
}

func TestLoadIdentityBad(t *testing.T) {
	dir := t.TempDir()
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpBytes, err := crypto.MarshalPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	good, err := CreateIdentity(filepath.Join(dir, "good.key"))
	if err != nil {
		t.Fatal(err)
	}
	goodBytes, _ := crypto.MarshalPrivateKey(good)

	for name, content := range map[string][]byte{
		"garbage": []byte("this is not a key file at all\n"),
		"binary junk": func() []byte {
			b := make([]byte, 68)
			for i := range b {
				b[i] = byte(i * 37)
			}
			return b
		}(),
		"empty":         {},
		"truncated key": goodBytes[:len(goodBytes)/2],
		"secp256k1 key": secpBytes,
		"public key only": func() []byte {
			b, err := crypto.MarshalPublicKey(good.GetPublic())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if key, err := LoadIdentity(path); err == nil {
				t.Errorf("LoadIdentity accepted %s: key type %s", name, key.Type())
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		if _, err := LoadIdentity(filepath.Join(dir, "nope.key")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadIdentity of a missing file = %v, want fs.ErrNotExist", err)
		}
	})
}
