package v1

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// osFiles is the FileChecker the agent uses.
type osFiles struct{}

func (osFiles) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

func (osFiles) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

var (
	_ FileChecker = osFiles{}
	_ FileReader  = osFiles{}
)

const ageKey = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

// files creates files under dir with the given modes; a name ending in /
// is a directory.
func files(t *testing.T, dir string, modes map[string]fs.FileMode) {
	t.Helper()
	for name, mode := range modes {
		p := filepath.Join(dir, name)
		var err error
		if strings.HasSuffix(name, "/") {
			err = os.Mkdir(p, mode)
		} else {
			err = os.WriteFile(p, []byte("secret\n"), mode)
		}
		if err == nil {
			err = os.Chmod(p, mode) // past the umask
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// check decodes and validates one file, with $DIR standing for dir in the
// manifest, and returns every error line with dir written back as $DIR.
func check(t *testing.T, dir, manifest string) []string {
	t.Helper()
	objs, errs := Decode("m.yaml", []byte(strings.ReplaceAll(manifest, "$DIR", dir)))
	errs = append(errs, Validate(objs, osFiles{})...)
	errs.sort()
	var out []string
	for _, e := range errs {
		out = append(out, strings.ReplaceAll(e.Error(), dir, "$DIR"))
	}
	return out
}

const goodManifest = `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /var/backups/aegis}
  bandwidth: {limit: 0}
---
apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: offsite
  labels: {tier: cold}
spec:
  sftp:
    host: backup.example.com
    port: 22
    user: aegis
    path: backups/web
    privateKeyFile: $DIR/id_ed25519
    knownHostsFile: $DIR/known_hosts
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: minio}
spec:
  s3: {provider: minio, endpoint: "http://127.0.0.1:9000", bucket: backups, credentialsFile: $DIR/s3.env}
  bandwidth:
    limit: 50MiB/s
    timeZone: Europe/Berlin
    schedule:
      - {days: Mon-Fri, between: "08:00-18:00", limit: 5MiB/s}
      - {days: "Sat,Sun", between: "22:00-06:00", limit: unlimited}
      - {between: "12:00-13:00", limit: 500KiB/s}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: ftp}
spec:
  ftp: {host: 192.0.2.7, user: backup, passwordFile: $DIR/ftp.pass, path: /backups, tls: explicit, caFile: $DIR/ca.pem}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "0 * * * *"
  timeZone: Europe/Berlin
  sources:
    - name: site
      files: {paths: [/var/www], exclude: ["**/*.log", "**/cache/**"], oneFileSystem: true}
    - name: db
      postgres: {host: /var/run/postgresql, databases: [app], passwordFile: $DIR/pg.pass}
    - name: shop
      mysql: {socket: /run/mysqld/mysqld.sock, user: backup, passwordFile: $DIR/my.pass}
    - name: volumes
      dockerVolume: {selector: {backup: "true"}, stopContainers: true}
      hooks:
        before:
          - command: [docker, compose, stop]
            timeout: 2m
    - name: host
      system: {extraPaths: [/opt/app/etc]}
  destinations: [disk, offsite, minio, ftp]
  compression: {algorithm: zstd, level: 19}
  encryption:
    age:
      recipients: ["` + ageKey + `"]
      recipientsFile: $DIR/recipients.txt
  retention: {keepLast: 3, hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 2, within: 1d12h, schedule: "@daily"}
  hooks:
    onFailure:
      - {command: ["/usr/local/bin/page", "backup failed"], shell: false}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: etc}
spec:
  schedule: "@every 6h"
  suspend: true
  sources: [{name: etc, files: {paths: [/etc]}}]
  destinations: [disk]
  compression: {algorithm: gzip, level: 9}
  encryption:
    openssl: {keyFile: $DIR/backup.key, iterations: 600000}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: scratch}
spec:
  schedule: "@daily"
  sources: [{name: tmp, files: {paths: [/srv/scratch]}}]
  destinations: [disk]
  encryption: {none: true}
`

func goodFiles(t *testing.T, dir string) {
	files(t, dir, map[string]fs.FileMode{
		"id_ed25519": 0o600, "known_hosts": 0o644, "s3.env": 0o400, "ftp.pass": 0o600, "ca.pem": 0o644,
		"pg.pass": 0o600, "my.pass": 0o600, "recipients.txt": 0o644, "backup.key": 0o600,
	})
}

func TestValidateGood(t *testing.T) {
	dir := t.TempDir()
	goodFiles(t, dir)
	if got := check(t, dir, goodManifest); len(got) != 0 {
		t.Errorf("a good manifest gave errors:\n%s", strings.Join(got, "\n"))
	}
}

// policy returns a BackupPolicy web whose spec holds body (body's first line
// is line 5), followed by a Destination disk.
func policy(body string) string {
	return "apiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: web}\nspec:\n" + body +
		"---\napiVersion: aegis.io/v1\nkind: Destination\nmetadata: {name: disk}\nspec:\n  local: {path: /var/backups}\n"
}

// destination returns a Destination disk whose spec holds body (body's
// first line is line 5).
func destination(body string) string {
	return "apiVersion: aegis.io/v1\nkind: Destination\nmetadata: {name: disk}\nspec:\n" + body
}

// Lines 5-8 of a policy that is valid apart from its encryption.
const basics = `  schedule: "@daily"
  sources: [{name: site, files: {paths: [/var/www]}}]
  destinations: [disk]
`

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]fs.FileMode
		manifest string
		want     []string
	}{
		{
			name:     "encryption missing",
			manifest: policy(basics),
			want:     []string{`m.yaml:4: BackupPolicy/web: spec.encryption: is required: set age, openssl or none: true (unencrypted backups must be asked for explicitly)`},
		},
		{
			name:     "encryption none: false is no choice",
			manifest: policy(basics + "  encryption: {none: false}\n"),
			want:     []string{`m.yaml:8: BackupPolicy/web: spec.encryption: is required: set age, openssl or none: true (unencrypted backups must be asked for explicitly)`},
		},
		{
			name: "encryption: two modes",
			manifest: policy(basics + `  encryption:
    age: {recipients: [` + ageKey + `]}
    none: true
`),
			want: []string{`m.yaml:8: BackupPolicy/web: spec.encryption: exactly one of age, openssl, none must be set (found: age, none)`},
		},
		{
			name: "age: no recipients, bad recipients, missing recipients file",
			manifest: policy(basics + `  encryption:
    age: {}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web2}
spec:
` + basics + `  encryption:
    age:
      recipientsFile: $DIR/nope.txt
      recipients:
        - ` + ageKey + `
        - AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ
        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI
        - age1notbech32bio
`),
			want: []string{
				`m.yaml:9: BackupPolicy/web: spec.encryption.age: set recipients or recipientsFile`,
				`m.yaml:20: BackupPolicy/web2: spec.encryption.age.recipientsFile: file $DIR/nope.txt does not exist`,
				`m.yaml:23: BackupPolicy/web2: spec.encryption.age.recipients[1]: is an age secret key: a manifest must name public keys (age1...) only`,
				`m.yaml:24: BackupPolicy/web2: spec.encryption.age.recipients[2]: must be an age public key (age1...)`,
				`m.yaml:25: BackupPolicy/web2: spec.encryption.age.recipients[3]: must be an age public key (age1...)`,
			},
		},
		{
			name:  "openssl key file open to others",
			files: map[string]fs.FileMode{"key": 0o644},
			manifest: policy(basics + `  encryption:
    openssl: {keyFile: $DIR/key, iterations: 1000}
`),
			want: []string{
				`m.yaml:9: BackupPolicy/web: spec.encryption.openssl.iterations: must be at least 10000`,
				`m.yaml:9: BackupPolicy/web: spec.encryption.openssl.keyFile: secret file $DIR/key is readable by group or others (mode 0644); chmod 600 it`,
			},
		},
		{
			name: "schedule and time zone",
			manifest: policy(`  schedule: "0 25 * * *"
  timeZone: Europe/Atlantis
  sources: [{name: site, files: {paths: [/var/www]}}]
  destinations: [disk]
  encryption: {none: true}
  retention: {schedule: "@reboot"}
`),
			want: []string{
				`m.yaml:5: BackupPolicy/web: spec.schedule: invalid schedule "0 25 * * *": end of range (25) above maximum (23): 25`,
				`m.yaml:6: BackupPolicy/web: spec.timeZone: unknown time zone "Europe/Atlantis"`,
				`m.yaml:10: BackupPolicy/web: spec.retention.schedule: invalid schedule "@reboot": unrecognized descriptor: @reboot`,
			},
		},
		{
			name: "required fields missing report their parent's line",
			manifest: policy(`  suspend: true
  encryption: {none: true}
`),
			want: []string{
				`m.yaml:4: BackupPolicy/web: spec.schedule: is required`,
				`m.yaml:4: BackupPolicy/web: spec.sources: is required`,
				`m.yaml:4: BackupPolicy/web: spec.destinations: is required`,
			},
		},
		{
			name: "empty lists",
			manifest: policy(`  schedule: "@daily"
  sources: []
  destinations: [""]
  encryption: {none: true}
`),
			want: []string{
				`m.yaml:6: BackupPolicy/web: spec.sources: must not be empty`,
				`m.yaml:7: BackupPolicy/web: spec.destinations[0]: must not be empty`,
			},
		},
		{
			name: "sources: one of, duplicate names, DNS labels, paths",
			manifest: policy(`  schedule: "@daily"
  sources:
    - name: site
      files: {paths: [var/www, /srv/../etc, /data/]}
      postgres: {}
    - name: site
    - name: Site_2
      system: {extraPaths: [opt]}
    - files: {paths: [/a]}
    - name: vols
      dockerVolume: {name: data, selector: {app: web}}
    - name: vols2
      dockerVolume: {stopContainers: true}
  destinations: [disk, disk]
  encryption: {none: true}
`),
			want: []string{
				`m.yaml:7: BackupPolicy/web: spec.sources[0]: exactly one of files, postgres, mysql, dockerVolume, system must be set (found: files, postgres)`,
				`m.yaml:8: BackupPolicy/web: spec.sources[0].files.paths[0]: must be an absolute path`,
				`m.yaml:8: BackupPolicy/web: spec.sources[0].files.paths[1]: must be a clean absolute path (did you mean "/etc"?)`,
				`m.yaml:8: BackupPolicy/web: spec.sources[0].files.paths[2]: must be a clean absolute path (did you mean "/data"?)`,
				`m.yaml:10: BackupPolicy/web: spec.sources[1].name: duplicate source name "site" (first at line 7)`,
				`m.yaml:10: BackupPolicy/web: spec.sources[1]: exactly one of files, postgres, mysql, dockerVolume, system must be set`,
				`m.yaml:11: BackupPolicy/web: spec.sources[2].name: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)`,
				`m.yaml:12: BackupPolicy/web: spec.sources[2].system.extraPaths[0]: must be an absolute path`,
				`m.yaml:13: BackupPolicy/web: spec.sources[3].name: is required`,
				`m.yaml:15: BackupPolicy/web: spec.sources[4].dockerVolume: exactly one of name, selector must be set (found: name, selector)`,
				`m.yaml:17: BackupPolicy/web: spec.sources[5].dockerVolume: exactly one of name, selector must be set`,
				`m.yaml:18: BackupPolicy/web: spec.destinations[1]: destination "disk" is listed twice`,
			},
		},
		{
			name:  "database password files",
			files: map[string]fs.FileMode{"pg.pass": 0o620, "dir/": 0o700},
			manifest: policy(`  schedule: "@daily"
  sources:
    - name: pg
      postgres: {port: 0, passwordFile: $DIR/pg.pass}
    - name: my
      mysql: {port: 70000, passwordFile: $DIR/dir/, socket: run/mysqld.sock}
    - name: my2
      mysql: {passwordFile: $DIR/dir}
    - name: my3
      mysql: {passwordFile: $DIR/missing}
  destinations: [disk]
  encryption: {none: true}
`),
			want: []string{
				`m.yaml:8: BackupPolicy/web: spec.sources[0].postgres.passwordFile: secret file $DIR/pg.pass is writable by group or others (mode 0620); chmod 600 it`,
				`m.yaml:10: BackupPolicy/web: spec.sources[1].mysql.port: must be at most 65535`,
				`m.yaml:10: BackupPolicy/web: spec.sources[1].mysql.socket: must be an absolute path`,
				`m.yaml:10: BackupPolicy/web: spec.sources[1].mysql.passwordFile: must be a clean absolute path (did you mean "$DIR/dir"?)`,
				`m.yaml:12: BackupPolicy/web: spec.sources[2].mysql.passwordFile: secret file $DIR/dir is not a regular file`,
				`m.yaml:14: BackupPolicy/web: spec.sources[3].mysql.passwordFile: file $DIR/missing does not exist`,
			},
		},
		{
			name: "destinations not found",
			manifest: policy(`  schedule: "@daily"
  sources: [{name: site, files: {paths: [/var/www]}}]
  destinations:
    - disk
    - offsite
  encryption: {none: true}
`),
			want: []string{`m.yaml:9: BackupPolicy/web: spec.destinations[1]: destination "offsite" not found`},
		},
		{
			name: "storage",
			manifest: policy(`  schedule: "@daily"
  sources: [{name: site, files: {paths: [/var/www]}}]
  destinations: [disk]
  encryption: {none: true}
  storage: dedup
`),
			want: []string{`m.yaml:9: BackupPolicy/web: spec.storage: must be one of: deduplicated archive`},
		},
		{
			name: "compression, retention and hooks",
			manifest: policy(basics + `  encryption: {none: true}
  compression: {algorithm: lz4, level: -1}
  retention:
    keepLast: -1
    daily: 7
    within: 7days
  hooks:
    before:
      - command: []
      - command: ["", "x"]
        timeout: soon
    after:
      - shell: true
      - command: [true]
        timeout: -5s
`),
			want: []string{
				`m.yaml:9: BackupPolicy/web: spec.compression.algorithm: must be one of: zstd gzip none`,
				`m.yaml:9: BackupPolicy/web: spec.compression.level: must not be negative`,
				`m.yaml:11: BackupPolicy/web: spec.retention.keepLast: must not be negative`,
				`m.yaml:13: BackupPolicy/web: spec.retention.within: invalid duration "7days": use a number and a unit, such as 36h, 7d or 1d12h`,
				`m.yaml:16: BackupPolicy/web: spec.hooks.before[0].command: must not be empty`,
				`m.yaml:17: BackupPolicy/web: spec.hooks.before[1].command[0]: must not be empty`,
				`m.yaml:18: BackupPolicy/web: spec.hooks.before[1].timeout: must be a positive duration such as 30s or 5m`,
				`m.yaml:20: BackupPolicy/web: spec.hooks.after[0].command: is required`,
				`m.yaml:22: BackupPolicy/web: spec.hooks.after[1].timeout: must be a positive duration such as 30s or 5m`,
			},
		},
		{
			name:     "gzip levels stop at 9",
			manifest: policy(basics + "  encryption: {none: true}\n  compression: {algorithm: gzip, level: 12}\n"),
			want:     []string{`m.yaml:9: BackupPolicy/web: spec.compression.level: must be at most 9 for gzip`},
		},
		{
			name: "metadata",
			manifest: `apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: Backup_Disk
spec:
  local: {path: /a}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {labels: {a: b}}
spec:
  local: {path: /a}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: a-very-long-name-that-goes-on-and-on-beyond-the-limit-of-dns-labels}
spec:
  local: {path: /a}
`,
			want: []string{
				`m.yaml:4: Destination/Backup_Disk: metadata.name: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)`,
				`m.yaml:10: Destination/?: metadata.name: is required`,
				`m.yaml:16: Destination/a-very-long-name-that-goes-on-and-on-beyond-the-limit-of-dns-labels: metadata.name: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)`,
			},
		},
		{
			name: "destination: one of",
			manifest: destination(`  local: {path: /a}
  s3: {provider: aws, bucket: backups}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: nothing}
spec: {}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: no-spec}
`),
			want: []string{
				`m.yaml:4: Destination/disk: spec: exactly one of local, s3, sftp, ftp must be set (found: local, s3)`,
				`m.yaml:11: Destination/nothing: spec: exactly one of local, s3, sftp, ftp must be set`,
				`m.yaml:13: Destination/no-spec: spec: exactly one of local, s3, sftp, ftp must be set`,
			},
		},
		{
			name:  "s3",
			files: map[string]fs.FileMode{"creds": 0o640},
			manifest: destination(`  s3:
    provider: other
    bucket: ""
    credentialsFile: $DIR/creds
    partSizeMiB: 1
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: b2}
spec:
  s3: {provider: azure, endpoint: "not a url", bucket: backups}
`),
			want: []string{
				`m.yaml:5: Destination/disk: spec.s3.endpoint: is required when provider is other`,
				`m.yaml:7: Destination/disk: spec.s3.bucket: is required`,
				`m.yaml:8: Destination/disk: spec.s3.credentialsFile: secret file $DIR/creds is readable by group or others (mode 0640); chmod 600 it`,
				`m.yaml:9: Destination/disk: spec.s3.partSizeMiB: must be at least 5`,
				`m.yaml:15: Destination/b2: spec.s3.provider: must be one of: aws b2 gcs wasabi digitalocean minio other`,
				`m.yaml:15: Destination/b2: spec.s3.endpoint: must be a URL such as https://s3.example.com`,
			},
		},
		{
			name:  "sftp",
			files: map[string]fs.FileMode{"hosts/": 0o755},
			manifest: destination(`  sftp:
    host: "bad host!"
    user: aegis
    path: backups
    knownHostsFile: $DIR/hosts
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: two}
spec:
  sftp:
    host: 2001:db8::1
    user: aegis
    path: backups
    privateKeyFile: $DIR/id
    knownHostsFile: $DIR/known_hosts
`),
			want: []string{
				`m.yaml:5: Destination/disk: spec.sftp: set privateKeyFile or passwordFile`,
				`m.yaml:6: Destination/disk: spec.sftp.host: must be a host name or an IP address`,
				`m.yaml:9: Destination/disk: spec.sftp.knownHostsFile: file $DIR/hosts is a directory`,
				`m.yaml:19: Destination/two: spec.sftp.privateKeyFile: file $DIR/id does not exist`,
				`m.yaml:20: Destination/two: spec.sftp.knownHostsFile: file $DIR/known_hosts does not exist`,
			},
		},
		{
			name:  "ftp",
			files: map[string]fs.FileMode{"pass": 0o600},
			manifest: destination(`  ftp:
    host: ftp.example.com
    port: -21
    user: u
    passwordFile: $DIR/pass
    path: /backups
    tls: starttls
    caFile: $DIR/ca.pem
`),
			want: []string{
				`m.yaml:7: Destination/disk: spec.ftp.port: must be at least 1`,
				`m.yaml:11: Destination/disk: spec.ftp.tls: must be one of: none explicit implicit`,
				`m.yaml:12: Destination/disk: spec.ftp.caFile: file $DIR/ca.pem does not exist`,
			},
		},
		{
			name: "bandwidth",
			manifest: destination(`  local: {path: /a}
  bandwidth:
    limit: 50Mbps
    timeZone: Europe/Atlantis
    schedule:
      - {days: Mon-Fry, between: "8-18", limit: 5MiB/s}
      - {days: "Sat,Sun", between: "22:00-22:00", limit: 100B/s}
      - {limit: 1GB/s}
      - {between: "22:00-06:00", limit: 0}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: empty}
spec:
  local: {path: /b}
  bandwidth: {}
`),
			want: []string{
				`m.yaml:7: Destination/disk: spec.bandwidth.limit: invalid rate "50Mbps": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`,
				`m.yaml:8: Destination/disk: spec.bandwidth.timeZone: unknown time zone "Europe/Atlantis"`,
				`m.yaml:10: Destination/disk: spec.bandwidth.schedule[0].days: invalid days "Mon-Fry": use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges such as Mon-Fri and lists such as Sat,Sun`,
				`m.yaml:10: Destination/disk: spec.bandwidth.schedule[0].between: invalid time range "8-18": use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00`,
				`m.yaml:11: Destination/disk: spec.bandwidth.schedule[1].between: time range "22:00-22:00" is empty (00:00-24:00 is the whole day)`,
				`m.yaml:11: Destination/disk: spec.bandwidth.schedule[1].limit: rate "100B/s" is below the minimum of 1KiB/s (0 or unlimited for no limit)`,
				`m.yaml:12: Destination/disk: spec.bandwidth.schedule[2].between: is required`,
				`m.yaml:20: Destination/empty: spec.bandwidth: set limit, schedule or both`,
			},
		},
		{
			name: "duplicate names per kind",
			manifest: policy(basics+"  encryption: {none: true}\n") + `---
apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: disk
spec:
  local: {path: /b}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: disk}
spec:
` + basics + "  encryption: {none: true}\n",
			want: []string{
				`m.yaml:19: Destination/disk: metadata.name: duplicate name: Destination "disk" is already defined at m.yaml:12`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files(t, dir, tt.files)
			got := check(t, dir, tt.manifest)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestValidateAcrossFiles(t *testing.T) {
	a := destination("  local: {path: /a}\n")
	b := "# shared destinations\n" + destination("  local: {path: /b}\n") + `---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@daily"
  sources: [{name: site, files: {paths: [/var/www]}}]
  destinations: [disk, cloud]
  encryption: {none: true}
`
	var objs []*Object
	for _, f := range []struct{ name, data string }{{"a.yaml", a}, {"b.yaml", b}} {
		o, errs := Decode(f.name, []byte(f.data))
		if len(errs) != 0 {
			t.Fatalf("Decode(%s): %v", f.name, errs)
		}
		objs = append(objs, o...)
	}
	assertErrors(t, Validate(objs, nil), []string{
		`b.yaml:4: Destination/disk: metadata.name: duplicate name: Destination "disk" is already defined at a.yaml:3`,
		`b.yaml:14: BackupPolicy/web: spec.destinations[1]: destination "cloud" not found`,
	})
}

// statErr fails every Stat.
type statErr struct{ err error }

func (s statErr) Stat(string) (fs.FileInfo, error) { return nil, s.err }

func TestValidateStatError(t *testing.T) {
	objs, errs := Decode("m.yaml", []byte(policy(basics+"  encryption:\n    openssl: {keyFile: /etc/aegis/keys/web}\n")))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	assertErrors(t, Validate(objs, statErr{fs.ErrPermission}), []string{
		`m.yaml:9: BackupPolicy/web: spec.encryption.openssl.keyFile: cannot check file /etc/aegis/keys/web: permission denied`,
	})
	assertErrors(t, Validate(objs, statErr{errors.New("boom")}), []string{
		`m.yaml:9: BackupPolicy/web: spec.encryption.openssl.keyFile: cannot check file /etc/aegis/keys/web: boom`,
	})
	// Without a FileChecker, files are not checked.
	assertErrors(t, Validate(objs, nil), nil)
}

func TestParseRetentionDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "36h", want: 36 * time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "2d30m", want: 48*time.Hour + 30*time.Minute},
		{in: "90m", want: 90 * time.Minute},
		{in: "+1d", want: 24 * time.Hour},
		{in: "0d", want: 0},
		{in: "", wantErr: true},
		{in: "7", wantErr: true},
		{in: "d", wantErr: true},
		{in: "7days", wantErr: true},
		{in: "1w", wantErr: true},
		{in: "-1d", wantErr: true},
		{in: "1d-2h", wantErr: true},
		{in: "1..5d", wantErr: true},
		{in: "200000000d", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRetentionDuration(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRetentionDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDefaults(t *testing.T) {
	p := &BackupPolicy{}
	Defaults(p)
	if c := p.Spec.Compression; c == nil || *c != (Compression{Algorithm: CompressionZstd, Level: 3}) {
		t.Errorf("Defaults on no compression = %+v, want zstd level 3", c)
	}
	p = &BackupPolicy{Spec: BackupPolicySpec{Compression: &Compression{Level: 7}}}
	Defaults(p)
	if c := *p.Spec.Compression; c != (Compression{Algorithm: CompressionZstd, Level: 7}) {
		t.Errorf("Defaults on level 7 = %+v, want zstd level 7", c)
	}
	p = &BackupPolicy{Spec: BackupPolicySpec{Compression: &Compression{Algorithm: CompressionNone}}}
	Defaults(p)
	if c := *p.Spec.Compression; c != (Compression{Algorithm: CompressionNone}) {
		t.Errorf("Defaults on none = %+v, want it unchanged", c)
	}
}

func TestDNS1123Label(t *testing.T) {
	for s, want := range map[string]bool{
		"web": true, "a": true, "0": true, "web-1": true, "1-web": true, strings.Repeat("a", 63): true,
		"": false, "-web": false, "web-": false, "Web": false, "web_1": false, "web.1": false, strings.Repeat("a", 64): false,
	} {
		if got := isDNS1123Label(s); got != want {
			t.Errorf("isDNS1123Label(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestAgeRecipient(t *testing.T) {
	for s, want := range map[string]bool{
		ageKey: true,
		"age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t": true,
		"":                 false,
		"age1":             false,
		"age1qqqqq":        false,
		"AGE1QL3Z7HJY54PW": false,
		"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8b": false, // b is not Bech32
		"ssh-ed25519 AAAA": false,
	} {
		if got := isAgeRecipient(s); got != want {
			t.Errorf("isAgeRecipient(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestValidateAfterDecodeErrors(t *testing.T) {
	// What Decode rejected is reported once, not again as missing.
	got := check(t, t.TempDir(), `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: /var/backups
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@daily"
  sources:
    - name: site
      files: {paths: /var/www}
    - site2
  destinations: [disk]
  encryption: {age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p}
`)
	want := []string{
		`m.yaml:5: Destination/disk: spec.local: must be a mapping, not the string "/var/backups"`,
		`m.yaml:14: BackupPolicy/web: spec.sources[0].files.paths: must be a list, not the string "/var/www"`,
		`m.yaml:15: BackupPolicy/web: spec.sources[1]: must be a mapping, not the string "site2"`,
		`m.yaml:17: BackupPolicy/web: spec.encryption.age: must be a mapping, not the string "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
