package snapshot

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func writeKeyFile(t *testing.T, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "openssl.key")
	if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// chunked writes p in uneven pieces, as a tar writer does.
func chunked(t *testing.T, w io.Writer, p []byte) {
	t.Helper()
	sizes := []int{1, 7, 15, 16, 17, 4095, 65536}
	for i := 0; len(p) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
}

func TestOpenSSLRoundTrip(t *testing.T) {
	pass := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	for _, size := range []int{0, 1, 15, 16, 17, 31, 32, 100000, 1 << 20} {
		plain := make([]byte, size)
		rand.Read(plain)
		var ct bytes.Buffer
		w, err := newOpenSSLWriter(&ct, pass, 1000)
		if err != nil {
			t.Fatal(err)
		}
		chunked(t, w, plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if want := 16 + (size/16+1)*16; ct.Len() != want {
			t.Errorf("size %d: ciphertext %d bytes, want %d", size, ct.Len(), want)
		}
		r, err := newOpenSSLReader(bytes.NewReader(ct.Bytes()), pass, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("size %d: round trip differs", size)
		}
		// A wrong key never yields the plaintext (CBC cannot always say so:
		// garbage can end in valid padding; the manifest HMAC catches it).
		r, _ = newOpenSSLReader(bytes.NewReader(ct.Bytes()), []byte("wrong"), 1000)
		if got, err := io.ReadAll(r); err == nil && size > 0 && bytes.Equal(got, plain) {
			t.Errorf("size %d: wrong key decrypted the plaintext", size)
		}
		// A truncated stream is an error.
		if ct.Len() > 32 {
			r, _ = newOpenSSLReader(bytes.NewReader(ct.Bytes()[:ct.Len()-5]), pass, 1000)
			if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("size %d: truncated stream: err = %v", size, err)
			}
		}
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; hack/deps.sh installs it", name)
		}
		t.Skipf("%s is not installed; run ./hack/deps.sh", name)
	}
}

// TestOpenSSLInterop proves the stream is the one `openssl enc` reads and
// writes, both ways.
func TestOpenSSLInterop(t *testing.T) {
	needTool(t, "openssl")
	keyFile := writeKeyFile(t, "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00")
	pass, err := readOpenSSLPassphrase(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, 300000)
	rand.Read(plain)
	for _, iter := range []int{10000, DefaultOpenSSLIterations} {
		// Ours → openssl.
		var ct bytes.Buffer
		w, _ := newOpenSSLWriter(&ct, pass, iter)
		chunked(t, w, plain)
		w.Close()
		cmd := exec.Command("openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-md", "sha256", "-iter", strconv.Itoa(iter), "-pass", "file:"+keyFile)
		cmd.Stdin = &ct
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("openssl enc -d: %v: %s", err, stderr.String())
		}
		if !bytes.Equal(out.Bytes(), plain) {
			t.Errorf("iter %d: openssl decrypted something else", iter)
		}
		// openssl → ours.
		cmd = exec.Command("openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-iter", strconv.Itoa(iter), "-pass", "file:"+keyFile)
		cmd.Stdin = bytes.NewReader(plain)
		out.Reset()
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("openssl enc: %v: %s", err, stderr.String())
		}
		r, err := newOpenSSLReader(&out, pass, iter)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("iter %d: decrypting openssl's output: err %v, equal %v", iter, err, bytes.Equal(got, plain))
		}
	}
}

// TestCodecRoundTrip runs every compression with every encryption through
// encode, seal, authenticate and decode.
func TestCodecRoundTrip(t *testing.T) {
	ident, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(t.TempDir(), "id.key")
	os.WriteFile(idFile, []byte(ident.String()+"\n"), 0o600)
	keyFile := writeKeyFile(t, "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface")
	keys, err := LoadKeyRing([]string{idFile, keyFile}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("aegis backs up linux servers\n"), 40000)
	encs := map[string]v1.Encryption{
		"age":     {Age: &v1.AgeEncryption{Recipients: []string{ident.Recipient().String()}}},
		"openssl": {OpenSSL: &v1.OpenSSLEncryption{KeyFile: keyFile, Iterations: 10000}},
		"none":    {None: true},
	}
	for _, comp := range []string{"zstd", "gzip", "none"} {
		for encName, enc := range encs {
			t.Run(comp+"/"+encName, func(t *testing.T) {
				p := &v1.BackupPolicy{Spec: v1.BackupPolicySpec{Compression: &v1.Compression{Algorithm: comp}, Encryption: &enc}}
				c, err := newCodec(p)
				if err != nil {
					t.Fatal(err)
				}
				var stored bytes.Buffer
				w, err := c.encode(&stored)
				if err != nil {
					t.Fatal(err)
				}
				chunked(t, w, plain)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				m := &v1.SnapshotManifest{ID: "20261125T000000Z-abcdef", Policy: "p", Source: "s", Host: "h"}
				m.Compression, m.Encryption = c.manifestCodecs()
				sealed, _, err := c.seal(m)
				if err != nil {
					t.Fatal(err)
				}
				d := &decoder{keys: keys}
				keys.AcceptMode(encName, false)
				if err := d.authenticate(m, func() ([]byte, error) { return sealed, nil }); err != nil {
					t.Fatalf("authenticate: %v", err)
				}
				if encName == "none" {
					// A plain snapshot under a policy that encrypts is a
					// possible swap: refused unless the user says so.
					keys.AcceptMode("age", false)
					if err := d.authenticate(m, nil); err == nil || !strings.Contains(err.Error(), "says it is not encrypted") {
						t.Errorf("downgrade to none: err = %v", err)
					}
					keys.AcceptMode("age", true)
					if err := d.authenticate(m, nil); err != nil {
						t.Errorf("downgrade allowed: %v", err)
					}
					keys.AcceptMode(encName, false)
				}
				r, err := d.decode(m, bytes.NewReader(stored.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("decode: err %v, equal %v", err, bytes.Equal(got, plain))
				}
				if comp != "none" && stored.Len() > len(plain)/10 {
					t.Errorf("stored %d bytes of %d: not compressed", stored.Len(), len(plain))
				}
				// An edited manifest is caught by the encrypted modes.
				m.Files = 999
				err = d.authenticate(m, func() ([]byte, error) { return sealed, nil })
				if encName != "none" && err == nil {
					t.Errorf("an edited manifest passed authentication")
				}
			})
		}
	}
}

func TestAgeWrongIdentity(t *testing.T) {
	right, _ := age.GenerateX25519Identity()
	wrong, _ := age.GenerateX25519Identity()
	wrongFile := filepath.Join(t.TempDir(), "wrong.key")
	os.WriteFile(wrongFile, []byte(wrong.String()+"\n"), 0o600)
	p := &v1.BackupPolicy{Spec: v1.BackupPolicySpec{Encryption: &v1.Encryption{Age: &v1.AgeEncryption{Recipients: []string{right.Recipient().String()}}}}}
	c, _ := newCodec(p)
	var stored bytes.Buffer
	w, _ := c.encode(&stored)
	w.Write([]byte("secret"))
	w.Close()
	m := &v1.SnapshotManifest{ID: "x"}
	m.Compression, m.Encryption = c.manifestCodecs()
	for name, files := range map[string][]string{"none": nil, "wrong": {wrongFile}} {
		keys, _ := LoadKeyRing(files, "", nil)
		_, err := (&decoder{keys: keys}).decode(m, bytes.NewReader(stored.Bytes()))
		if err == nil || !strings.Contains(err.Error(), AgeKeyID(right.Recipient().String())) {
			t.Errorf("%s identity: err = %v, want one naming key %s", name, err, AgeKeyID(right.Recipient().String()))
		}
	}
}

func TestKeyFileModeRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.key")
	os.WriteFile(p, []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
	_, err := LoadKeyRing([]string{p}, "", nil)
	if err == nil || !strings.Contains(err.Error(), "readable by group or others (mode 0644)") {
		t.Errorf("err = %v", err)
	}
}

// TestPassphraseProtectedIdentity: an identity file encrypted with a
// passphrase (age -p, scrypt), binary or armored, opens with the passphrase
// and refuses a wrong one.
func TestPassphraseProtectedIdentity(t *testing.T) {
	ident, _ := age.GenerateX25519Identity()
	for _, armored := range []bool{false, true} {
		var buf bytes.Buffer
		sr, _ := age.NewScryptRecipient("correct horse battery staple")
		sr.SetWorkFactor(10)
		var out io.Writer = &buf
		var aw io.WriteCloser
		if armored {
			aw = armor.NewWriter(&buf)
			out = aw
		}
		w, err := age.Encrypt(out, sr)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(ident.String() + "\n"))
		w.Close()
		if aw != nil {
			aw.Close()
		}
		file := filepath.Join(t.TempDir(), "protected.key")
		os.WriteFile(file, buf.Bytes(), 0o600)

		info, _, _, err := ReadKeyFile(file)
		if err != nil || !info.Protected {
			t.Fatalf("armored=%v: ReadKeyFile = %+v, %v", armored, info, err)
		}
		if _, err := LoadKeyRing([]string{file}, "", nil); err == nil || !strings.Contains(err.Error(), "protected by a passphrase") {
			t.Errorf("armored=%v: no passphrase source: err = %v", armored, err)
		}
		wrong := func(string) ([]byte, error) { return []byte("wrong"), nil }
		if _, err := LoadKeyRing([]string{file}, "", wrong); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
			t.Errorf("armored=%v: wrong passphrase: err = %v", armored, err)
		}
		right := func(string) ([]byte, error) { return []byte("correct horse battery staple"), nil }
		kr, err := LoadKeyRing([]string{file}, "", right)
		if err != nil || len(kr.identities) != 1 {
			t.Fatalf("armored=%v: right passphrase: %v", armored, err)
		}
		if x, ok := kr.identities[0].(*age.X25519Identity); !ok || x.Recipient().String() != ident.Recipient().String() {
			t.Errorf("armored=%v: opened identity is not the one stored", armored)
		}
	}
}
