package snapshot

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// The dedup key keys chunk IDs; it never decrypts data. In openssl mode it
// is derived from the passphrase (the host holds it anyway). Otherwise the
// host generates it once and keeps it in STATE/dedup/POLICY.key (mode
// 0600), and stores a copy beside the repository, sealed to the policy's
// recipients (keys/KEYID.age; keys/KEYID.key in clear when encryption is
// off), so that restore and verify, which hold the identity, can check
// every chunk's ID.

const dedupKeyInfo = "aegis dedup key v1"

// dedupKeyID names a dedup key without revealing it.
func dedupKeyID(k []byte) string {
	sum := sha256.Sum256(append([]byte("aegis dedup key id\n"), k...))
	return "dk-" + hex.EncodeToString(sum[:8])
}

// opensslDedupKey derives the dedup key of an openssl-mode policy.
func opensslDedupKey(pass []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, pass, nil, dedupKeyInfo, 32)
}

// dedupKeyObject is the key of the stored copy of a dedup key.
func dedupKeyObject(repo, id, encryption string) string {
	if encryption == "none" {
		return repo + "keys/" + id + ".key"
	}
	return repo + "keys/" + id + ".age"
}

// hostDedupKey returns the policy's dedup key and its ID, creating the key
// in stateDir on first use.
func hostDedupKey(c *codec, stateDir, policy string) ([]byte, string, error) {
	if c.encryption == "openssl" {
		k, err := opensslDedupKey(c.pass)
		if err != nil {
			return nil, "", fmt.Errorf("derive dedup key: %w", err)
		}
		return k, dedupKeyID(k), nil
	}
	if stateDir == "" {
		return nil, "", errors.New("deduplicated storage needs a state directory for its dedup key")
	}
	name := filepath.Join(stateDir, "dedup", policy+".key")
	if b, err := os.ReadFile(name); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, "", fmt.Errorf("dedup key %s is damaged: move it away to start a new repository key", name)
		}
		return k, dedupKeyID(k), nil
	} else if !os.IsNotExist(err) {
		return nil, "", fmt.Errorf("read dedup key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, "", fmt.Errorf("store dedup key: %w", err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) { // another run created it first
			return hostDedupKey(c, stateDir, policy)
		}
		return nil, "", fmt.Errorf("store dedup key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(k) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(name)
		return nil, "", fmt.Errorf("store dedup key %s: %w", name, err)
	}
	return k, dedupKeyID(k), nil
}

// storeDedupKey makes sure dest holds the sealed copy of the dedup key.
func storeDedupKey(ctx context.Context, dest drivers.Destination, c *codec, repo string, k []byte, id string) error {
	if c.encryption == "openssl" {
		return nil
	}
	key := dedupKeyObject(repo, id, c.encryption)
	if _, err := dest.Stat(ctx, key); err == nil {
		return nil
	} else if !errors.Is(err, drivers.ErrNotFound) {
		return fmt.Errorf("stat %s: %w", key, err)
	}
	body := []byte(hex.EncodeToString(k) + "\n")
	if c.encryption == "age" {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, c.recipients...)
		if err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		body = buf.Bytes()
	}
	if _, err := putSmall(ctx, dest, key, body); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// readDedupKey returns the dedup key of snapshot m, from the key ring
// (openssl) or from the sealed copy on dest, and checks it is the one the
// manifest names.
func readDedupKey(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest, dec *decoder) (dedup.Key, error) {
	var k []byte
	switch m.Encryption.Algorithm {
	case "openssl":
		pass, err := dec.keys.openSSLKey(m.Encryption.KeyID)
		if err != nil {
			return dedup.Key{}, fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		if k, err = opensslDedupKey(pass); err != nil {
			return dedup.Key{}, err
		}
	default:
		repo := dedup.RepoPrefix(m.Host, m.Policy)
		key := dedupKeyObject(repo, m.DedupKeyID, cmpOr(m.Encryption.Algorithm, "none"))
		rc, err := dest.Get(ctx, key)
		if err != nil {
			return dedup.Key{}, fmt.Errorf("snapshot %s: read dedup key: %w", m.ID, err)
		}
		defer rc.Close()
		var in io.Reader = io.LimitReader(rc, 4096)
		if m.Encryption.Algorithm == "age" {
			if in, err = dec.ageDecrypt(m, in); err != nil {
				return dedup.Key{}, err
			}
		}
		b, err := io.ReadAll(io.LimitReader(in, 4096))
		if err != nil {
			return dedup.Key{}, fmt.Errorf("snapshot %s: read dedup key %s: %w", m.ID, key, err)
		}
		if k, err = hex.DecodeString(strings.TrimSpace(string(b))); err != nil {
			return dedup.Key{}, fmt.Errorf("snapshot %s: dedup key %s is damaged", m.ID, key)
		}
	}
	if got := dedupKeyID(k); got != m.DedupKeyID {
		return dedup.Key{}, fmt.Errorf("snapshot %s: dedup key %s does not match the manifest's %s", m.ID, got, m.DedupKeyID)
	}
	return dedup.NewKey(k)
}
