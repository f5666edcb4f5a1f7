package v1

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ageIdentity is an age secret key as age-keygen writes it (not one in use).
const ageIdentity = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"

func TestValidateBucketNames(t *testing.T) {
	tests := []struct {
		bucket, provider string
		want             string // the message, or "" when valid
	}{
		{"backups", "aws", ""},
		{"acme.backups-2026", "aws", ""},
		{"abc", "aws", ""},
		{strings.Repeat("a", 63), "aws", ""},
		{"acme_backups", "gcs", ""},
		{"ab", "aws", `invalid bucket name "ab": it is 2 characters long; S3 allows 3 to 63`},
		{strings.Repeat("a", 64), "aws", `invalid bucket name "` + strings.Repeat("a", 64) + `": it is 64 characters long; S3 allows 3 to 63`},
		{"Acme-Backups", "aws", `invalid bucket name "Acme-Backups": upper-case letters are not allowed (did you mean "acme-backups"?)`},
		{"acme_backups", "wasabi", `invalid bucket name "acme_backups": '_' is not allowed; use lower-case letters, digits, dots and hyphens`},
		{"acme/web", "minio", `invalid bucket name "acme/web": a bucket name has no "/": put the path inside the bucket in prefix`},
		{"-backups", "aws", `invalid bucket name "-backups": it must begin and end with a lower-case letter or a digit`},
		{"backups.", "other", `invalid bucket name "backups.": it must begin and end with a lower-case letter or a digit`},
		{"acme..backups", "aws", `invalid bucket name "acme..backups": it must not have two dots in a row`},
		{"192.168.5.4", "aws", `invalid bucket name "192.168.5.4": it must not be formatted as an IP address`},
		{"xn--backups", "aws", `invalid bucket name "xn--backups": the prefixes xn-- and sthree- are reserved`},
		{"sthree-backups", "aws", `invalid bucket name "sthree-backups": the prefixes xn-- and sthree- are reserved`},
		{"backups-s3alias", "aws", `invalid bucket name "backups-s3alias": the suffixes -s3alias, --ol-s3 and --x-s3 are reserved`},
		{"backups--ol-s3", "aws", `invalid bucket name "backups--ol-s3": the suffixes -s3alias, --ol-s3 and --x-s3 are reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.bucket, func(t *testing.T) {
			m := destination("  s3:\n    provider: " + tt.provider + "\n    endpoint: https://s3.example.com\n    bucket: \"" + tt.bucket + "\"\n")
			var want []string
			if tt.want != "" {
				want = []string{"m.yaml:8: Destination/disk: spec.s3.bucket: " + tt.want}
			}
			if got := check(t, t.TempDir(), m); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

func TestValidateAgeIdentityWhereRecipientsBelong(t *testing.T) {
	dir := t.TempDir()
	// What age-keygen writes: an identity file, not a recipients file.
	keygen := "# created: 2026-12-04T15:00:00Z\n# public key: " + ageKey + "\n" + ageIdentity + "\n"
	for name, body := range map[string]string{"identity.txt": keygen, "recipients.txt": "# ops\n" + ageKey + "\n\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		manifest string
		want     []string
	}{
		{
			name: "recipients file holding an identity",
			manifest: policy(basics + `  encryption:
    age: {recipientsFile: $DIR/identity.txt}
`),
			want: []string{`m.yaml:9: BackupPolicy/web: spec.encryption.age.recipientsFile: file $DIR/identity.txt holds an age secret key on line 3: a recipients file must list public keys (age1...) only; keep the identity for restores and list its public key here`},
		},
		{
			name: "a good recipients file",
			manifest: policy(basics + `  encryption:
    age: {recipientsFile: $DIR/recipients.txt}
`),
		},
		{
			name: "identity in the recipients list",
			manifest: policy(basics + `  encryption:
    age:
      recipients: ["` + ageIdentity + `"]
`),
			want: []string{`m.yaml:10: BackupPolicy/web: spec.encryption.age.recipients[0]: is an age secret key: a manifest must name public keys (age1...) only`},
		},
		{
			name: "identity instead of the recipients list",
			manifest: policy(basics + `  encryption:
    age:
      recipients: ` + ageIdentity + `
`),
			want: []string{`m.yaml:10: BackupPolicy/web: spec.encryption.age.recipients: must be a list, not an age secret key (AGE-SECRET-KEY-..., not shown)`},
		},
		{
			name: "identity instead of the age block",
			manifest: policy(basics + `  encryption:
    age: "` + strings.ToLower(ageIdentity) + `"
`),
			want: []string{`m.yaml:9: BackupPolicy/web: spec.encryption.age: must be a mapping, not an age secret key (AGE-SECRET-KEY-..., not shown)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(t, dir, tt.manifest)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			for _, line := range got {
				if strings.Contains(strings.ToUpper(line), ageIdentity[len("AGE-SECRET-KEY-"):len("AGE-SECRET-KEY-")+8]) {
					t.Errorf("a message shows the secret key: %s", line)
				}
			}
		})
	}
}

// ownedFiles describes every file as a regular file of mode 0600 owned by
// the uid named in its path ("/secrets/uid-1000/key").
type ownedFiles struct{}

func (ownedFiles) Stat(name string) (fs.FileInfo, error) {
	var uid uint32
	for _, part := range strings.Split(name, "/") {
		if n, ok := strings.CutPrefix(part, "uid-"); ok {
			for _, c := range n {
				uid = uid*10 + uint32(c-'0')
			}
		}
	}
	return ownedInfo{name: filepath.Base(name), uid: uid}, nil
}

type ownedInfo struct {
	name string
	uid  uint32
}

func (i ownedInfo) Name() string       { return i.name }
func (i ownedInfo) Size() int64        { return 7 }
func (i ownedInfo) Mode() fs.FileMode  { return 0o600 }
func (i ownedInfo) ModTime() time.Time { return time.Time{} }
func (i ownedInfo) IsDir() bool        { return false }
func (i ownedInfo) Sys() any           { return &syscall.Stat_t{Uid: i.uid} }

func TestValidateSecretFileOwner(t *testing.T) {
	manifest := policy(`  schedule: "@daily"
  sources:
    - name: pg
      postgres: {passwordFile: /secrets/uid-0/pg}
    - name: my
      mysql: {passwordFile: /secrets/uid-998/my}
    - name: my2
      mysql: {passwordFile: /secrets/uid-1000/my}
  destinations: [disk]
  encryption:
    openssl: {keyFile: /keys/uid-1000/web}
`)
	objs, errs := Decode("m.yaml", []byte(manifest))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		name string
		opts ValidateOptions
		want []string
	}{
		{
			name: "agent as root",
			opts: ValidateOptions{Files: ownedFiles{}, AgentUID: 0},
			want: []string{
				`m.yaml:10: BackupPolicy/web: spec.sources[1].mysql.passwordFile: secret file /secrets/uid-998/my is owned by uid 998, not by root, the user the agent runs as; chown root it`,
				`m.yaml:12: BackupPolicy/web: spec.sources[2].mysql.passwordFile: secret file /secrets/uid-1000/my is owned by uid 1000, not by root, the user the agent runs as; chown root it`,
				`m.yaml:15: BackupPolicy/web: spec.encryption.openssl.keyFile: secret file /keys/uid-1000/web is owned by uid 1000, not by root, the user the agent runs as; chown root it`,
			},
		},
		{
			name: "agent as uid 998",
			opts: ValidateOptions{Files: ownedFiles{}, AgentUID: 998},
			want: []string{
				`m.yaml:12: BackupPolicy/web: spec.sources[2].mysql.passwordFile: secret file /secrets/uid-1000/my is owned by uid 1000, not by root or by uid 998, the user the agent runs as; chown it`,
				`m.yaml:15: BackupPolicy/web: spec.encryption.openssl.keyFile: secret file /keys/uid-1000/web is owned by uid 1000, not by root or by uid 998, the user the agent runs as; chown it`,
			},
		},
		{
			name: "offline: no file is looked at",
			opts: ValidateOptions{Files: ownedFiles{}, AgentUID: 0, Offline: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertErrors(t, ValidateWith(objs, tt.opts), tt.want)
		})
	}
}

func TestValidateOffline(t *testing.T) {
	// Every file is missing on this machine; offline, only the manifests
	// themselves are judged.
	manifest := `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: offsite}
spec:
  sftp: {host: backup.example.com, user: aegis, path: backups, privateKeyFile: /etc/aegis/keys/id, knownHostsFile: /etc/aegis/known_hosts}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: cloud}
spec:
  s3: {provider: aws, region: eu-central-1, bucket: Acme, credentialsFile: /etc/aegis/secrets/s3}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "0 * * * *"
  sources:
    - name: db
      postgres: {passwordFile: /etc/aegis/secrets/pg}
  destinations: [offsite, cloud, nas]
  encryption:
    age: {recipientsFile: /etc/aegis/keys/recipients.txt}
`
	objs, errs := Decode("m.yaml", []byte(manifest))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	assertErrors(t, ValidateWith(objs, ValidateOptions{Files: osFiles{}, Offline: true}), []string{
		`m.yaml:11: Destination/cloud: spec.s3.bucket: invalid bucket name "Acme": upper-case letters are not allowed (did you mean "acme"?)`,
		`m.yaml:21: BackupPolicy/web: spec.destinations[2]: destination "nas" not found`,
	})
	// On the host, the same manifests also name the missing files.
	got := ValidateWith(objs, ValidateOptions{Files: osFiles{}})
	if len(got) != 7 {
		t.Errorf("online: %d errors, want 7 (5 missing files, bucket, reference):\n%v", len(got), got)
	}
}

// TestExamplesValidateOffline checks every file under manifests/examples
// as `aegis-agent validate --offline` in a GitOps CI would.
func TestExamplesValidateOffline(t *testing.T) {
	const dir = "../../manifests/examples"
	var objs []*Object
	var errs ErrorList
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		o, e := Decode(p, data)
		objs, errs, n = append(objs, o...), append(errs, e...), n+1
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no files under %s", dir)
	}
	errs = append(errs, ValidateWith(objs, ValidateOptions{Offline: true})...)
	assertErrors(t, errs, nil)
}

func TestDecodeSizeCap(t *testing.T) {
	doc := "apiVersion: aegis.io/v1\nkind: Destination\nmetadata: {name: disk}\nspec:\n  local: {path: /a}\n"
	pad := func(n int) []byte { return []byte(doc + "#" + strings.Repeat("x", n-len(doc)-2) + "\n") }

	objs, errs := Decode("big.yaml", pad(MaxManifestSize))
	assertErrors(t, errs, nil)
	if len(objs) != 1 {
		t.Errorf("a file of exactly 1 MiB: %d objects, want 1", len(objs))
	}

	objs, errs = Decode("big.yaml", pad(MaxManifestSize+1))
	assertErrors(t, errs, []string{"big.yaml: manifest file is 1048577 bytes, over the limit of 1 MiB (1048576 bytes); split it into several files"})
	if len(objs) != 0 {
		t.Errorf("a file over 1 MiB: %d objects, want none", len(objs))
	}
	// A loader can refuse a file by its size before reading it.
	if e, over := CheckManifestSize("big.yaml", 5<<20); !over || e.Error() != "big.yaml: manifest file is 5242880 bytes, over the limit of 1 MiB (1048576 bytes); split it into several files" {
		t.Errorf("CheckManifestSize(5 MiB) = %v, %v", e, over)
	}
	if _, over := CheckManifestSize("ok.yaml", MaxManifestSize); over {
		t.Errorf("CheckManifestSize(1 MiB) refuses a file of exactly 1 MiB")
	}
}

func TestDecodeManyValuesWithoutAliases(t *testing.T) {
	// Under 1 MiB, but more values than a document may hold: the message
	// must not blame aliases there are none of.
	doc := "apiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: huge}\nspec:\n  schedule: \"@daily\"\n  hooks:\n    before:\n      - command: [" +
		strings.TrimSuffix(strings.Repeat("a,", 100001), ",") + "]\n"
	if len(doc) > MaxManifestSize {
		t.Fatalf("test document is %d bytes, over the cap", len(doc))
	}
	_, errs := Decode("h.yaml", []byte(doc))
	assertErrors(t, errs, []string{"h.yaml:1: BackupPolicy/huge: document has more than 100000 values"})
}
