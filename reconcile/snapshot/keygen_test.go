package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

var keyNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return keyNow }

func TestGenerateKey(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{KeyKindAge, KeyKindOpenSSL} {
		k, err := GenerateKey(kind, keyNow)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, k.ID+".key")
		if err := WriteNewKeyFile(file, k.Body); err != nil {
			t.Fatal(err)
		}
		info, _, _, err := ReadKeyFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != k.ID || info.Kind != kind {
			t.Errorf("%s: read back as %+v, want ID %s", kind, info, k.ID)
		}
		if kind == KeyKindAge && (!info.Created.Equal(keyNow) || info.Fingerprint != k.Public) {
			t.Errorf("age key: created %v fingerprint %s, want %v %s", info.Created, info.Fingerprint, keyNow, k.Public)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", kind, fi.Mode().Perm())
		}
		err = WriteNewKeyFile(file, []byte("other"))
		if want := file + " already exists: not overwriting a key"; err == nil || err.Error() != want {
			t.Errorf("second write: %v, want %q", err, want)
		}
	}
	if _, err := GenerateKey("rsa", keyNow); !errors.Is(err, ErrUnknownKeyKind) {
		t.Errorf("GenerateKey(rsa) = %v", err)
	}
}

func TestRotateOpenSSLKey(t *testing.T) {
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	keyFile := writeKeyFile(t, "0123456789abcdef0123456789abcdef")
	oldID := OpenSSLKeyID([]byte("0123456789abcdef0123456789abcdef"))
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}}
	p.Spec.Encryption = &v1.Encryption{OpenSSL: &v1.OpenSSLEncryption{KeyFile: keyFile}}
	r, err := RotateKey(p, RotateOptions{KeysDir: keysDir, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if r.OldKeyID != oldID || r.Archive != filepath.Join(keysDir, oldID+".key") || r.File != keyFile || r.KeyID == oldID {
		t.Errorf("rotation %+v", r)
	}
	archived, _, _, err := ReadKeyFile(r.Archive)
	if err != nil || archived.ID != oldID {
		t.Errorf("archived key %+v, %v", archived, err)
	}
	now, _, _, err := ReadKeyFile(keyFile)
	if err != nil || now.ID != r.KeyID {
		t.Errorf("key file now %+v, %v; want ID %s", now, err, r.KeyID)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
}

func TestRotateAgeRecipientsFile(t *testing.T) {
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	managed, _ := GenerateKey(KeyKindAge, keyNow)
	if err := WriteNewKeyFile(filepath.Join(keysDir, managed.ID+".key"), managed.Body); err != nil {
		t.Fatal(err)
	}
	escrow, _ := GenerateKey(KeyKindAge, keyNow) // its identity is kept elsewhere
	recips := filepath.Join(dir, "recipients.txt")
	os.WriteFile(recips, []byte("# team keys\n"+managed.Public+"\n"+escrow.Public+"\n"), 0o644)
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}}
	p.Spec.Encryption = &v1.Encryption{Age: &v1.AgeEncryption{RecipientsFile: recips}}
	r, err := RotateKey(p, RotateOptions{KeysDir: keysDir, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(recips)
	want := "# team keys\n# rotated out 2026-11-25T12:00:00Z: " + managed.Public + "\n" + escrow.Public + "\n" + r.Public + "\n"
	if string(got) != want {
		t.Errorf("recipients file:\n%s\nwant:\n%s", got, want)
	}
	if r.File != recips || r.IdentityFile != filepath.Join(keysDir, r.KeyID+".key") || r.Manual {
		t.Errorf("rotation %+v", r)
	}
}

func TestRotateAgeInlineRecipients(t *testing.T) {
	keysDir := t.TempDir()
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}}
	p.Spec.Encryption = &v1.Encryption{Age: &v1.AgeEncryption{Recipients: []string{"age1example"}}}
	r, err := RotateKey(p, RotateOptions{KeysDir: keysDir, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Manual || !strings.HasPrefix(r.Public, "age1") || r.File != r.IdentityFile {
		t.Errorf("rotation %+v", r)
	}
	if _, err := os.Stat(r.IdentityFile); err != nil {
		t.Error(err)
	}
}

func TestRotateUnencrypted(t *testing.T) {
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}}
	p.Spec.Encryption = &v1.Encryption{None: true}
	_, err := RotateKey(p, RotateOptions{KeysDir: t.TempDir()})
	if !errors.Is(err, ErrNotEncrypted) || err.Error() != "policy web is not encrypted: nothing to rotate" {
		t.Errorf("RotateKey = %v", err)
	}
}
