package snapshot

import (
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestAgeIdentityInDir(t *testing.T) {
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	file := filepath.Join(dir, "web.key")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recipientsFile := filepath.Join(dir, "recipients.txt")
	os.WriteFile(recipientsFile, []byte(other.Recipient().String()+"\n"+id.Recipient().String()+"\n"), 0o644)
	for _, tc := range []struct {
		name string
		enc  *v1.Encryption
		want string
	}{
		{"its recipient", &v1.Encryption{Age: &v1.AgeEncryption{Recipients: []string{id.Recipient().String()}}}, file},
		{"in the recipients file", &v1.Encryption{Age: &v1.AgeEncryption{RecipientsFile: recipientsFile}}, file},
		{"another key", &v1.Encryption{Age: &v1.AgeEncryption{Recipients: []string{other.Recipient().String()}}}, ""},
		{"openssl", &v1.Encryption{OpenSSL: &v1.OpenSSLEncryption{}}, ""},
		{"none", nil, ""},
	} {
		if got := AgeIdentityInDir(dir, tc.enc); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
