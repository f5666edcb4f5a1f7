package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	v1 "github.com/aegis-backup/aegis/api/v1"
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
	// Protected is set for an age identity file encrypted with a
	// passphrase (age -p): restore asks for the passphrase.
	Protected bool `json:"protected,omitempty"`
}

// isProtectedIdentity reports whether an identity file is itself age
// encrypted (binary or armored), as `age -p` writes it.
func isProtectedIdentity(body []byte) bool {
	return bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) ||
		bytes.HasPrefix(bytes.TrimSpace(body), []byte(armor.Header))
}

// openProtectedIdentity decrypts a passphrase-protected identity file with
// the scrypt identity of the passphrase and parses what is inside.
func openProtectedIdentity(name string, body, pass []byte) ([]age.Identity, error) {
	sid, err := age.NewScryptIdentity(string(pass))
	if err != nil {
		return nil, err
	}
	var in io.Reader = bytes.NewReader(body)
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte(armor.Header)) {
		in = armor.NewReader(bytes.NewReader(bytes.TrimSpace(body)))
	}
	r, err := age.Decrypt(in, sid)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: wrong passphrase, or the file is damaged", name)
	}
	ids, err := age.ParseIdentities(r)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", name, err)
	}
	return ids, nil
}

// AgeKeyID names an age recipient (public key): a truncated SHA-256.
func AgeKeyID(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return "age-" + hex.EncodeToString(sum[:])[:12]
}

// ReadKeyFile reads an age identity file or an openssl key file and
// describes it. A key file readable by group or others is refused.
func ReadKeyFile(name string) (KeyInfo, []age.Identity, []byte, error) {
	if err := v1.CheckSecretFile(name); err != nil {
		return KeyInfo{}, nil, nil, err
	}
	body, err := os.ReadFile(name)
	if err != nil {
		return KeyInfo{}, nil, nil, err
	}
	fi, _ := os.Stat(name)
	info := KeyInfo{File: name, Created: fi.ModTime().UTC()}
	if isProtectedIdentity(body) {
		// Its public key is only known once the passphrase opens it.
		info.Kind = KeyKindAge
		info.Protected = true
		info.ID = "age-protected"
		info.Fingerprint = "(passphrase-protected identity)"
		return info, nil, nil, nil
	}
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
	// policyMode is the encryption mode of the policy whose snapshots are
	// read; allowClear lets unencrypted snapshots of an encrypted policy
	// through (see AcceptMode).
	policyMode string
	allowClear bool
}

// AcceptMode tells the key ring how the policy encrypts. A snapshot whose
// manifest says it is unencrypted is then refused unless the policy is
// unencrypted too or allowUnencrypted is set: otherwise anyone able to
// write to the destination could swap in a plain snapshot, which has no
// key to authenticate it.
func (k *KeyRing) AcceptMode(policyMode string, allowUnencrypted bool) {
	k.policyMode, k.allowClear = policyMode, allowUnencrypted
}

// LoadKeyRing reads the named identity and key files (each must be usable)
// and then every *.key file of keysDir (unusable ones are skipped: the
// named files are what the user asked for).
//
// A passphrase-protected identity named in files is opened with the
// passphrase that passphrase returns for it; nil means none can be had.
func LoadKeyRing(files []string, keysDir string, passphrase func(file string) ([]byte, error)) (*KeyRing, error) {
	kr := &KeyRing{openssl: map[string][]byte{}}
	add := func(name string, named bool) error {
		info, ids, pass, err := ReadKeyFile(name)
		if err != nil {
			return err
		}
		if info.Protected {
			if !named {
				return nil // only opened when asked for by name
			}
			if passphrase == nil {
				return fmt.Errorf("identity file %s is protected by a passphrase: pass --passphrase-file FILE, or run on a terminal", name)
			}
			secret, err := passphrase(name)
			if err != nil {
				return err
			}
			body, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			if ids, err = openProtectedIdentity(name, body, secret); err != nil {
				return err
			}
			info.ID = "age-protected"
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
		if err := add(f, true); err != nil {
			return nil, err
		}
	}
	if keysDir != "" {
		if matches, _ := filepath.Glob(filepath.Join(keysDir, "*.key")); len(matches) > 0 {
			kr.looked = append(kr.looked, keysDir)
			for _, m := range matches {
				_ = add(m, false)
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

// AgeIdentityInDir returns the *.key file of keysDir holding the age
// identity of one of the policy's recipients, or "" when keysDir has none
// of them: this host then cannot decrypt the policy's snapshots, and
// restore and verify need --identity. It returns "" too for a policy that
// does not encrypt with age. Protected identities are not opened, so they
// do not count.
func AgeIdentityInDir(keysDir string, enc *v1.Encryption) string {
	if enc == nil || enc.Age == nil {
		return ""
	}
	want := map[string]bool{}
	for _, r := range enc.Age.Recipients {
		want[strings.TrimSpace(r)] = true
	}
	if enc.Age.RecipientsFile != "" {
		if body, err := os.ReadFile(enc.Age.RecipientsFile); err == nil {
			for _, l := range strings.Split(string(body), "\n") {
				want[strings.TrimSpace(l)] = true
			}
		}
	}
	matches, _ := filepath.Glob(filepath.Join(keysDir, "*.key"))
	sort.Strings(matches)
	for _, m := range matches {
		if info, _, _, err := ReadKeyFile(m); err == nil && info.Kind == KeyKindAge && want[info.Fingerprint] {
			return m
		}
	}
	return ""
}
