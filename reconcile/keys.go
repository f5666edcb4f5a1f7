package reconcile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
)

// Key kinds.
const (
	KeyKindAge     = "age"
	KeyKindOpenSSL = "openssl"
)

// KeyInfo describes a key file without its secret.
type KeyInfo struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	File    string    `json:"file"`
	Created time.Time `json:"created"`
	// Fingerprint is the age public key, or the SHA-256 based ID of an
	// openssl passphrase.
	Fingerprint string `json:"fingerprint"`
}

// AgeKeyID names an age recipient (public key): a truncated SHA-256.
func AgeKeyID(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return "age-" + hex.EncodeToString(sum[:])[:12]
}

var opensslKeyLine = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// ReadKeyFile reads an age identity file or an openssl key file and
// describes it. A key file readable by group or others is refused.
func ReadKeyFile(name string) (KeyInfo, []age.Identity, []byte, error) {
	if err := checkSecretMode(name); err != nil {
		return KeyInfo{}, nil, nil, err
	}
	body, err := os.ReadFile(name)
	if err != nil {
		return KeyInfo{}, nil, nil, err
	}
	fi, _ := os.Stat(name)
	info := KeyInfo{File: name, Created: fi.ModTime().UTC()}
	if bytes.Contains(body, []byte("AGE-SECRET-KEY-")) {
		ids, err := age.ParseIdentities(bytes.NewReader(body))
		if err != nil {
			return KeyInfo{}, nil, nil, fmt.Errorf("key file %s: %w", name, err)
		}
		info.Kind = KeyKindAge
		for _, id := range ids {
			if x, ok := id.(*age.X25519Identity); ok && info.Fingerprint == "" {
				info.Fingerprint = x.Recipient().String()
				info.ID = AgeKeyID(info.Fingerprint)
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "# created: "); ok {
				if t, err := time.Parse(time.RFC3339, strings.TrimSpace(v)); err == nil {
					info.Created = t.UTC()
				}
			}
		}
		return info, ids, nil, nil
	}
	pass, err := readOpenSSLPassphrase(name)
	if err != nil {
		return KeyInfo{}, nil, nil, err
	}
	info.Kind = KeyKindOpenSSL
	info.ID = OpenSSLKeyID(pass)
	info.Fingerprint = info.ID
	return info, nil, pass, nil
}

// ListKeys describes the key files (*.key) of dir. Files that cannot be
// used are reported as errors, not hidden.
func ListKeys(dir string) ([]KeyInfo, []error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.key"))
	if err != nil {
		return nil, []error{err}
	}
	sort.Strings(matches)
	var out []KeyInfo
	var errs []error
	for _, m := range matches {
		info, _, _, err := ReadKeyFile(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, info)
	}
	return out, errs
}

// KeyRing holds the keys restore and verify may use: age identities and
// openssl passphrases by key ID.
type KeyRing struct {
	identities []age.Identity
	ageIDs     []string
	openssl    map[string][]byte
	// looked lists where keys were searched, for error messages.
	looked []string
}

// LoadKeyRing reads the named identity and key files (each must be usable)
// and then every *.key file of keysDir (unusable ones are skipped: the
// named files are what the user asked for).
func LoadKeyRing(files []string, keysDir string) (*KeyRing, error) {
	kr := &KeyRing{openssl: map[string][]byte{}}
	add := func(name string) error {
		info, ids, pass, err := ReadKeyFile(name)
		if err != nil {
			return err
		}
		if pass != nil {
			kr.openssl[info.ID] = pass
		}
		if len(ids) > 0 {
			kr.identities = append(kr.identities, ids...)
			kr.ageIDs = append(kr.ageIDs, info.ID)
		}
		return nil
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		kr.looked = append(kr.looked, f)
		if err := add(f); err != nil {
			return nil, err
		}
	}
	if keysDir != "" {
		if matches, _ := filepath.Glob(filepath.Join(keysDir, "*.key")); len(matches) > 0 {
			kr.looked = append(kr.looked, keysDir)
			for _, m := range matches {
				_ = add(m)
			}
		}
	}
	return kr, nil
}

// openSSLKey returns the passphrase of key id.
func (k *KeyRing) openSSLKey(id string) ([]byte, error) {
	if k != nil {
		if p, ok := k.openssl[id]; ok {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no openssl key with id %s found (looked in: %s)", id, k.where())
}

func (k *KeyRing) where() string {
	if k == nil || len(k.looked) == 0 {
		return "nothing: pass the key file, or put it in the keys directory"
	}
	return strings.Join(k.looked, ", ")
}

var errNoIdentity = errors.New("no age identity")
