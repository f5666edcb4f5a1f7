package snapshot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/atomicfile"
)

// ErrUnknownKeyKind is returned for a key kind other than age and openssl.
var ErrUnknownKeyKind = errors.New("not age or openssl")

// ErrNotEncrypted is returned when rotating the key of a policy that does
// not encrypt.
var ErrNotEncrypted = errors.New("not encrypted: nothing to rotate")

// NewKey is a key just generated: the body of its key file, its ID and,
// for age, its public key (the recipient a policy names).
type NewKey struct {
	Kind   string
	ID     string
	Body   []byte
	Public string
}

// GenerateKey makes a new key of kind (KeyKindAge or KeyKindOpenSSL). An
// age key file records now as its creation time; an openssl key file is 64
// hex characters on one line, what openssl enc -pass file: reads.
func GenerateKey(kind string, now time.Time) (NewKey, error) {
	switch kind {
	case KeyKindAge:
		ident, err := age.GenerateX25519Identity()
		if err != nil {
			return NewKey{}, fmt.Errorf("generate age key: %w", err)
		}
		public := ident.Recipient().String()
		body := fmt.Appendf(nil, "# created: %s\n# public key: %s\n%s\n", now.UTC().Format(time.RFC3339), public, ident.String())
		return NewKey{Kind: kind, ID: AgeKeyID(public), Body: body, Public: public}, nil
	case KeyKindOpenSSL:
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			return NewKey{}, fmt.Errorf("generate openssl key: %w", err)
		}
		pass := hex.EncodeToString(k[:])
		return NewKey{Kind: kind, ID: OpenSSLKeyID([]byte(pass)), Body: []byte(pass + "\n")}, nil
	}
	return NewKey{}, fmt.Errorf("key kind %q: %w", kind, ErrUnknownKeyKind)
}

// WriteNewKeyFile writes a key file of mode 0600 (its directory created
// with mode 0700 if missing), atomically, and never over an existing file.
func WriteNewKeyFile(path string, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s already exists: not overwriting a key", path)
	}
	return atomicfile.Create(path, body, 0o600)
}

// Rotation is what RotateKey did.
type Rotation struct {
	Policy string
	// Kind is KeyKindAge or KeyKindOpenSSL; KeyID the new key's ID.
	Kind  string
	KeyID string
	// File now names the new key: the policy's openssl key file, or its
	// age recipients file; for inline age recipients, the new identity.
	File string
	// IdentityFile is the new age identity, in the keys directory.
	IdentityFile string
	// Public is the new age recipient.
	Public string
	// OldKeyID and Archive: the replaced openssl key, and where it is kept.
	OldKeyID string
	Archive  string
	// Manual is set when the policy lists its age recipients inline: the
	// identity is written, the manifest must be changed by hand.
	Manual bool
}

// RotateOptions are where RotateKey keeps keys and the time it records.
type RotateOptions struct {
	KeysDir string
	// Now is the clock of the new key's creation time and of the note on
	// rotated-out recipients; nil is time.Now.
	Now func() time.Time
}

// RotateKey makes a new key the one policy p encrypts new snapshots with;
// old keys stay in the keys directory so older snapshots still restore.
// openssl: the policy's key file gets the new key and the old one is kept
// as KEYS_DIR/ID.key. age with a recipients file: the new recipient
// replaces the recipients whose identity is in the keys directory. age with
// inline recipients: the new identity is written, and Manual set. On an
// error after the new identity was written, the Rotation says where it is.
func RotateKey(p *v1.BackupPolicy, opts RotateOptions) (*Rotation, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	enc := p.Spec.Encryption
	switch {
	case enc != nil && enc.OpenSSL != nil:
		return rotateOpenSSL(p.Metadata.Name, enc.OpenSSL.KeyFile, opts.KeysDir, now())
	case enc != nil && enc.Age != nil:
		return rotateAge(p.Metadata.Name, enc.Age, opts.KeysDir, now())
	}
	return nil, fmt.Errorf("policy %s is %w", p.Metadata.Name, ErrNotEncrypted)
}

func rotateOpenSSL(policy, keyFile, keysDir string, now time.Time) (*Rotation, error) {
	old, _, _, err := ReadKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	oldBody, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	archive := filepath.Join(keysDir, old.ID+".key")
	if _, err := os.Stat(archive); os.IsNotExist(err) {
		if err := WriteNewKeyFile(archive, oldBody); err != nil {
			return nil, fmt.Errorf("keep the old key: %w", err)
		}
	}
	k, err := GenerateKey(KeyKindOpenSSL, now)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(keyFile, k.Body, 0o600); err != nil {
		return nil, err
	}
	return &Rotation{Policy: policy, Kind: KeyKindOpenSSL, KeyID: k.ID, File: keyFile, OldKeyID: old.ID, Archive: archive}, nil
}

func rotateAge(policy string, enc *v1.AgeEncryption, keysDir string, now time.Time) (*Rotation, error) {
	k, err := GenerateKey(KeyKindAge, now)
	if err != nil {
		return nil, err
	}
	idFile := filepath.Join(keysDir, k.ID+".key")
	if err := WriteNewKeyFile(idFile, k.Body); err != nil {
		return nil, err
	}
	r := &Rotation{Policy: policy, Kind: KeyKindAge, KeyID: k.ID, File: idFile, IdentityFile: idFile, Public: k.Public}
	if enc.RecipientsFile == "" {
		r.Manual = true
		return r, nil
	}
	if err := replaceRecipients(enc.RecipientsFile, keysDir, k, now); err != nil {
		return r, err
	}
	r.File = enc.RecipientsFile
	return r, nil
}

// replaceRecipients comments out, in a recipients file, the recipients
// whose identity is in the keys directory, and appends the new one.
// Recipients kept elsewhere (an offline escrow key) stay.
func replaceRecipients(file, keysDir string, k NewKey, now time.Time) error {
	managed := map[string]bool{}
	keys, _ := ListKeys(keysDir)
	for _, key := range keys {
		if key.Kind == KeyKindAge && key.ID != k.ID {
			managed[key.Fingerprint] = true
		}
	}
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if managed[strings.TrimSpace(line)] {
			lines = append(lines, "# rotated out "+now.UTC().Format(time.RFC3339)+": "+strings.TrimSpace(line))
			continue
		}
		lines = append(lines, line)
	}
	lines = append(lines, k.Public)
	return atomicfile.Write(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
