package dedup

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// ID names a chunk: the keyed BLAKE3-256 of its plaintext under the
// repository's dedup key. Without the key, an ID tells nothing about the
// plaintext; the key cannot decrypt anything.
type ID [32]byte

// String returns the ID as 64 lower-case hex digits, the form used in pack
// member names, indexes and manifests.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseID decodes the 64 hex digits of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("parse chunk id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("parse chunk id %q: %w", s, err)
	}
	return id, nil
}

// Key is a repository's dedup key: 32 random bytes that key chunk IDs. It
// never decrypts data; see docs/dedup.md for what a leaked key reveals.
type Key struct{ k [32]byte }

// NewKey returns a dedup key from 32 bytes (from crypto/rand when created).
func NewKey(b []byte) (Key, error) {
	var k Key
	if len(b) != len(k.k) {
		return k, errors.New("dedup key must be 32 bytes")
	}
	copy(k.k[:], b)
	return k, nil
}

// ID computes the chunk ID of plaintext.
func (k Key) ID(plaintext []byte) ID {
	h, err := blake3.NewKeyed(k.k[:])
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	_, _ = h.Write(plaintext)
	var id ID
	h.Sum(id[:0])
	return id
}
