package f2f

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// KeyFileMode is the permission of identity.key.
const KeyFileMode = 0o600

// CreateIdentity makes a new ed25519 node key and writes it to path. It
// refuses to replace an existing file: losing the key means every friend
// must re-add this node.
func CreateIdentity(path string) (crypto.PrivKey, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating node key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding node key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, KeyFileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w at %s", ErrIdentityExists, path)
	}
	if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("syncing key file: %w", err)
	}
	return priv, f.Close()
}

// LoadIdentity reads the node key written by CreateIdentity.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading node key: %w", err)
	}
	priv, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("decoding node key %s: %w", path, err)
	}
	if priv.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("node key %s is %s, want Ed25519", path, priv.Type())
	}
	return priv, nil
}
