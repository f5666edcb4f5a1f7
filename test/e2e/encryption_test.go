package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
)

// opensslEnv is a user whose policy encrypts with an openssl key file.
func opensslEnv(t *testing.T, compression string) (*env, string) {
	t.Helper()
	e := newEnv(t)
	makeTree(t, filepath.Join(e.root, "src"), 8<<20)
	keyFile := filepath.Join(e.root, "keys", "openssl.key")
	e.run("keys", "generate", "--kind", "openssl", "--out", keyFile).mustCode(t, 0)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: p
spec:
  schedule: "@daily"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src/www"]
  destinations: [disk]
  compression: {algorithm: `+compression+`}
  encryption:
    openssl: {keyFile: `+keyFile+`, iterations: 100000}
`)
	return e, keyFile
}

func TestOpenSSLModeRoundTripAndManualRecovery(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			e, keyFile := opensslEnv(t, comp)
			e.run("--once").mustCode(t, 0)
			snaps := e.snapshots("p")
			if len(snaps) != 1 {
				t.Fatalf("%d snapshots", len(snaps))
			}
			m := snaps[0].Manifest
			if m.Encryption.Algorithm != "openssl" || m.Encryption.Iterations != 100000 || !strings.HasPrefix(m.Encryption.KeyID, "ossl-") || m.HMAC == nil {
				t.Errorf("manifest encryption = %+v, hmac %+v", m.Encryption, m.HMAC)
			}
			src := filepath.Join(e.root, "src", "www")
			target := filepath.Join(e.root, "restore")
			e.run("restore", "p", "--target", target).mustCode(t, 0)
			compareTrees(t, src, filepath.Join(target, "files", strings.TrimPrefix(src, "/")))

			// docs/format.md: openssl enc -d | zstd -d | tar -x.
			obj := filepath.Join(e.root, "backups", m.Host, "p", "files", m.ID, m.Objects[0].Key)
			decompress := map[string]string{"zstd": "zstd -d", "gzip": "gzip -d", "none": "cat"}[comp]
			manual := filepath.Join(e.root, "manual")
			os.MkdirAll(manual, 0o755)
			sh := exec.Command("sh", "-c", `openssl enc -d -aes-256-cbc -pbkdf2 -iter "$1" -pass "file:$2" -in "$3" | `+decompress+` | tar -xpf - -C "$4"`,
				"sh", strconv.Itoa(m.Encryption.Iterations), keyFile, obj, manual)
			if out, err := sh.CombinedOutput(); err != nil {
				t.Fatalf("manual recovery: %v\n%s", err, out)
			}
			compareTrees(t, src, filepath.Join(manual, strings.TrimPrefix(src, "/")))
			e.run("verify", "p").mustCode(t, 0)
		})
	}
}

// tamperCase damages a stored snapshot; verify and restore must both fail
// with a message containing want.
type tamperCase struct {
	name   string
	damage func(t *testing.T, e *env, a, b snapshotJSON) string // returns the expected message part
}

func snapDir(e *env, s snapshotJSON) string {
	return filepath.Join(e.root, "backups", s.Manifest.Host, s.Manifest.Policy, s.Manifest.Source, s.Manifest.ID)
}

var tamperCases = []tamperCase{
	{"flip a byte", func(t *testing.T, e *env, a, _ snapshotJSON) string {
		p := filepath.Join(snapDir(e, a), a.Manifest.Objects[0].Key)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x01
		os.WriteFile(p, b, 0o600)
		return "object " + a.Manifest.Objects[0].Key + ": SHA-256"
	}},
	{"truncate", func(t *testing.T, e *env, a, _ snapshotJSON) string {
		p := filepath.Join(snapDir(e, a), a.Manifest.Objects[0].Key)
		fi, _ := os.Stat(p)
		os.Truncate(p, fi.Size()-100)
		return "object " + a.Manifest.Objects[0].Key + ": stored size"
	}},
	{"swap objects between snapshots", func(t *testing.T, e *env, a, b snapshotJSON) string {
		pa := filepath.Join(snapDir(e, a), a.Manifest.Objects[0].Key)
		pb := filepath.Join(snapDir(e, b), b.Manifest.Objects[0].Key)
		ba, _ := os.ReadFile(pa)
		bb, _ := os.ReadFile(pb)
		os.WriteFile(pa, bb, 0o600)
		os.WriteFile(pb, ba, 0o600)
		return "snapshot " + a.Manifest.ID + ", object"
	}},
	{"swap objects and fix the manifest's hashes", func(t *testing.T, e *env, a, b snapshotJSON) string {
		pa := filepath.Join(snapDir(e, a), a.Manifest.Objects[0].Key)
		bb, _ := os.ReadFile(filepath.Join(snapDir(e, b), b.Manifest.Objects[0].Key))
		os.WriteFile(pa, bb, 0o600)
		editManifest(t, filepath.Join(snapDir(e, a), "manifest.json"), func(m map[string]any) {
			o := m["objects"].([]any)[0].(map[string]any)
			ob := b.Manifest.Objects[0]
			o["sha256"], o["size"], o["rawSize"] = ob.SHA256, ob.Size, ob.RawSize
		})
		return "snapshot " + a.Manifest.ID + ": the manifest"
	}},
	{"edit the manifest", func(t *testing.T, e *env, a, _ snapshotJSON) string {
		editManifest(t, filepath.Join(snapDir(e, a), "manifest.json"), func(m map[string]any) {
			m["files"] = 1
		})
		return "snapshot " + a.Manifest.ID + ": the manifest"
	}},
}

func editManifest(t *testing.T, path string, fn func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, _ = json.MarshalIndent(m, "", "  ")
	os.WriteFile(path, b, 0o600)
}

func TestTamperingIsDetected(t *testing.T) {
	modes := map[string]func(t *testing.T) (*env, []string){
		"age": func(t *testing.T) (*env, []string) {
			e := newEnv(t)
			makeTree(t, filepath.Join(e.root, "src"), 4<<20)
			e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+strings.Replace(smallPolicy("p", "disk"), `"@ROOT@/src"`, `"@ROOT@/src/www"`, 1))
			return e, []string{"--identity", e.identity}
		},
		"openssl": func(t *testing.T) (*env, []string) {
			e, _ := opensslEnv(t, "zstd")
			return e, nil
		},
	}
	for mode, setup := range modes {
		for _, tc := range tamperCases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				e, keyArgs := setup(t)
				e.run("run", "p").mustCode(t, 0)
				os.WriteFile(filepath.Join(e.root, "src", "www", "changed.txt"), []byte("second snapshot\n"), 0o644)
				e.run("run", "p").mustCode(t, 0)
				snaps := e.snapshots("p")
				if len(snaps) != 2 {
					t.Fatalf("%d snapshots, want 2", len(snaps))
				}
				want := tc.damage(t, e, snaps[0], snaps[1])

				v := e.run(append([]string{"verify", "p", "--snapshot", snaps[0].Manifest.ID}, keyArgs...)...)
				v.mustCode(t, 1)
				if !strings.Contains(v.stdout, want) {
					t.Errorf("verify output lacks %q:\n%s", want, v.stdout)
				}
				target := filepath.Join(e.root, "restore")
				r := e.run(append([]string{"restore", "p", "--snapshot", snaps[0].Manifest.ID, "--target", target}, keyArgs...)...)
				r.mustCode(t, 1)
				if !strings.Contains(r.stderr, want) {
					t.Errorf("restore error lacks %q:\n%s", want, r.stderr)
				}
				if _, err := os.Stat(filepath.Join(target, "files", ".aegis-restore-incomplete")); err != nil {
					t.Errorf("failed restore not marked incomplete: %v", err)
				}
			})
		}
	}
}

func TestWrongOrMissingKey(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	e.run("--once").mustCode(t, 0)
	keyID := e.snapshots("p")[0].Manifest.Encryption.KeyID
	// Move the identity out of the keys directory: nothing to decrypt with.
	hidden := filepath.Join(e.root, "elsewhere.key")
	if err := os.Rename(e.identity, hidden); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(e.root, "restore")
	r := e.run("restore", "p", "--target", target)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "is encrypted with age to key "+keyID+": pass its identity with --identity FILE") {
		t.Errorf("missing key:\n%s", r.stderr)
	}
	// Another identity.
	other := filepath.Join(e.root, "other.key")
	e.run("keys", "generate", "--out", other).mustCode(t, 0)
	r = e.run("restore", "p", "--identity", other, "--target", target)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "none of the identities given matches it") {
		t.Errorf("wrong key:\n%s", r.stderr)
	}
	entries, _ := os.ReadDir(filepath.Join(target, "files"))
	for _, en := range entries {
		if en.Name() != ".aegis-restore-incomplete" {
			t.Errorf("a restore with the wrong key wrote %s", en.Name())
		}
	}
	// A key file readable by others is refused.
	os.Chmod(hidden, 0o644)
	r = e.run("restore", "p", "--identity", hidden, "--target", target)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "is readable by group or others (mode 0644); chmod 600 it") {
		t.Errorf("loose key mode:\n%s", r.stderr)
	}
	os.Chmod(hidden, 0o600)
	e.run("restore", "p", "--identity", hidden, "--target", target).mustCode(t, 0)
}

func TestKeyRotation(t *testing.T) {
	t.Run("openssl", func(t *testing.T) {
		e, keyFile := opensslEnv(t, "zstd")
		e.run("run", "p").mustCode(t, 0)
		r := e.run("keys", "rotate", "p")
		r.mustCode(t, 0)
		e.run("run", "p").mustCode(t, 0)
		snaps := e.snapshots("p")
		if len(snaps) != 2 || snaps[0].Manifest.Encryption.KeyID == snaps[1].Manifest.Encryption.KeyID {
			t.Fatalf("after rotation: %d snapshots, key ids %v", len(snaps), keyIDs(snaps))
		}
		if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("rotated key file mode %v", fi.Mode().Perm())
		}
		for _, s := range snaps {
			target := filepath.Join(e.root, "restore-"+s.Manifest.ID)
			e.run("restore", "p", "--snapshot", s.Manifest.ID, "--target", target).mustCode(t, 0)
		}
		list := e.run("keys", "list")
		list.mustCode(t, 0)
		for _, id := range keyIDs(snaps) {
			if !strings.Contains(list.stdout, id) && !strings.Contains(r.stdout, id) {
				t.Errorf("key %s neither listed nor reported:\n%s\n%s", id, list.stdout, r.stdout)
			}
		}
	})
	t.Run("age recipients file", func(t *testing.T) {
		e := newEnv(t)
		smallTree(t, e)
		recips := filepath.Join(e.root, "recipients.txt")
		os.WriteFile(recips, []byte(e.recip+"\n"), 0o644)
		e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+strings.Replace(smallPolicy("p", "disk"), `recipients: ["@RECIPIENT@"]`, "recipientsFile: "+recips, 1))
		e.run("run", "p").mustCode(t, 0)
		e.run("keys", "rotate", "p").mustCode(t, 0)
		body, _ := os.ReadFile(recips)
		if strings.Contains(strings.Split(string(body), "\n")[len(strings.Split(string(body), "\n"))-2], e.recip) {
			t.Errorf("recipients file still ends with the old key:\n%s", body)
		}
		e.run("run", "p").mustCode(t, 0)
		snaps := e.snapshots("p")
		if len(snaps) != 2 || snaps[0].Manifest.Encryption.KeyID == snaps[1].Manifest.Encryption.KeyID {
			t.Fatalf("after rotation: key ids %v", keyIDs(snaps))
		}
		// Both restore with the identities of the keys directory.
		for _, s := range snaps {
			e.run("restore", "p", "--snapshot", s.Manifest.ID, "--target", filepath.Join(e.root, "r-"+s.Manifest.ID)).mustCode(t, 0)
		}
	})
}

func keyIDs(snaps []snapshotJSON) []string {
	var out []string
	for _, s := range snaps {
		out = append(out, s.Manifest.Encryption.KeyID)
	}
	return out
}

func TestUnencryptedRunWarns(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+strings.Replace(smallPolicy("p", "disk"), "age:\n      recipients: [\"@RECIPIENT@\"]", "none: true", 1))
	r := e.run("--once")
	r.mustCode(t, 0)
	if !strings.Contains(r.stderr, "encryption is off for this policy") {
		t.Errorf("no warning for an unencrypted run:\n%s", r.stderr)
	}
	if m := e.snapshots("p")[0].Manifest; m.Encryption.Algorithm != "none" || m.Objects[0].Key != "files.tar.zst" {
		t.Errorf("manifest = %+v", m)
	}
}

func TestRestoreWithPassphraseProtectedIdentity(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	e.run("--once").mustCode(t, 0)
	// Protect the identity with a passphrase (what `age -p` does) and take
	// the plain one away.
	plain, _ := os.ReadFile(e.identity)
	var buf bytes.Buffer
	sr, _ := age.NewScryptRecipient("restore-passphrase")
	sr.SetWorkFactor(12)
	w, _ := age.Encrypt(&buf, sr)
	w.Write(plain)
	w.Close()
	protected := filepath.Join(e.root, "protected.key")
	os.WriteFile(protected, buf.Bytes(), 0o600)
	os.Remove(e.identity)
	passFile := filepath.Join(e.root, "passphrase")
	os.WriteFile(passFile, []byte("restore-passphrase\n"), 0o600)

	target := filepath.Join(e.root, "restore")
	e.run("restore", "p", "--identity", protected, "--passphrase-file", passFile, "--target", target).mustCode(t, 0)
	if b, err := os.ReadFile(filepath.Join(target, "files", strings.TrimPrefix(e.root, "/"), "src", "d", "f.txt")); err != nil || string(b) != "data\n" {
		t.Errorf("restored file: %q, %v", b, err)
	}
	os.WriteFile(passFile, []byte("not it\n"), 0o600)
	r := e.run("verify", "p", "--identity", protected, "--passphrase-file", passFile)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("wrong passphrase:\n%s", r.stderr)
	}
}
