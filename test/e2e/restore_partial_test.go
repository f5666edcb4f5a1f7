package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"testing"
	"time"

	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"

	"github.com/aegis-backup/aegis/reconcile/observe"
)

// unencryptedPolicy is a policy that stores snapshots as they are, so that
// a hand-made one planted on its destination is restored without
// --allow-unencrypted.
func unencryptedPolicy(name, dest string) string {
	return `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: ` + name + `
spec:
  schedule: "@daily"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
  destinations: [` + dest + `]
  encryption:
    none: true
`
}

// tarOf builds a tar stream the way an attacker or a damaged archive would
// hold it: entries in the order given, with the bodies given.
func tarOf(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range entries {
		h := en.h
		h.Size = int64(len(en.body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(en.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type tarEntry struct {
	h    tar.Header
	body string
}

func TestPartialRestoreIsNeverReportedWhole(t *testing.T) {
	e := newEnv(t)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+unencryptedPolicy("p", "disk"))
	body := tarOf(t,
		tarEntry{h: tar.Header{Name: "ok.txt", Typeflag: tar.TypeReg}, body: "good\n"},
		// A file whose place is taken by a directory that is not empty.
		tarEntry{h: tar.Header{Name: "taken/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{h: tar.Header{Name: "taken/inside.txt", Typeflag: tar.TypeReg}, body: "inside\n"},
		tarEntry{h: tar.Header{Name: "taken", Typeflag: tar.TypeReg}, body: "file\n"},
		// An entry below a path that is a file.
		tarEntry{h: tar.Header{Name: "plain", Typeflag: tar.TypeReg}, body: "plain\n"},
		tarEntry{h: tar.Header{Name: "plain/under.txt", Typeflag: tar.TypeReg}, body: "under\n"},
		// A hard link whose target is missing.
		tarEntry{h: tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "missing.txt"}},
		// Special files, restored as tar does and listed.
		tarEntry{h: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600}},
		tarEntry{h: tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755}, body: "#!/bin/sh\n"},
	)
	if os.Geteuid() == 0 {
		body = append(body[:len(body)-1024], tarOf(t, tarEntry{h: tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}})...)
	}
	host, _ := os.Hostname()
	id := plantSnapshot(t, filepath.Join(e.root, "backups"), host, "p", "files", body)

	target := filepath.Join(e.root, "restore")
	r := e.run("restore", "p", "--target", target)
	r.mustCode(t, 1)
	for _, want := range []string{
		"aegis-agent: 3 entries of source files not restored:\n",
		"aegis-agent: not restored: files: \"taken\": a directory that is not empty is in its place\n",
		"aegis-agent: not restored: files: \"plain/under.txt\": its parent plain is not a directory\n",
		"aegis-agent: not restored: files: \"hard\": the target of the hard link, \"missing.txt\", is missing\n",
		"aegis-agent: the restore is incomplete: 3 entries not restored; .aegis-restore-incomplete marks each source restored in part\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	wantOut := []string{"restored in part snapshot " + id + " source files from disk into " + filepath.Join(target, "files") + ": ",
		"  special: fifo (FIFO)\n", "  special: suid (setuid file)\n"}
	if os.Geteuid() == 0 {
		wantOut = append(wantOut, "  special: null (character device 1:3)\n")
	}
	for _, want := range wantOut {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	dir := filepath.Join(target, "files")
	if _, err := os.Stat(filepath.Join(dir, ".aegis-restore-incomplete")); err != nil {
		t.Errorf("the marker of a partial restore is gone: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v, %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "suid")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("suid: %v, %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ok.txt")); err != nil || string(b) != "good\n" {
		t.Errorf("ok.txt: %q, %v", b, err)
	}

	evs := auditLines(t, e.logs)
	last := evs[len(evs)-1]
	if last.Action != observe.AuditRestoreRun || last.Outcome != observe.OutcomePartial || !strings.Contains(last.Message, `"plain/under.txt" (its parent plain is not a directory)`) {
		t.Errorf("audit line: %+v, want action %s, outcome %s, naming the entries", last, observe.AuditRestoreRun, observe.OutcomePartial)
	}
	agentLog, _ := os.ReadFile(filepath.Join(e.logs, "agent.log"))
	for _, name := range []string{`"entry":"taken"`, `"entry":"plain/under.txt"`, `"entry":"hard"`} {
		if !strings.Contains(string(agentLog), name) {
			t.Errorf("agent.log does not name %s:\n%s", name, agentLog)
		}
	}
}

// plantDump writes a hand-made postgres snapshot holding one dump file.
func plantDump(t *testing.T, destDir, host, policy, source, name string, dump []byte) {
	t.Helper()
	id := v1.NewSnapshotID(time.Now())
	dir := filepath.Join(destDir, host, policy, source, id)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, name), dump, 0o600)
	sum := sha256.Sum256(dump)
	m := v1.SnapshotManifest{
		FormatVersion: 1, ID: id, Time: time.Now().UTC(), Host: host, Policy: policy, Source: source, SourceKind: "postgres",
		Compression: v1.SnapshotCodec{Algorithm: "none"}, Encryption: v1.SnapshotCodec{Algorithm: "none"},
		Objects: []v1.SnapshotObject{{Name: name, Key: name, Format: "pgdump", Size: int64(len(dump)), SHA256: hex.EncodeToString(sum[:]), RawSize: int64(len(dump))}},
	}
	body, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "manifest.json"), body, 0o600)
}

// A dump restored where a file already is never writes through it: the
// result is a new file of root's with mode 0600, and a file elsewhere
// linked to that place is left as it was.
func TestDumpRestoredOverExistingFileIsANewFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the files in place belong to another user")
	}
	e := newEnv(t)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+unencryptedPolicy("p", "disk"))
	host, _ := os.Hostname()
	dump := []byte("PGDMP the dump\n")
	plantDump(t, filepath.Join(e.root, "backups"), host, "p", "db", "shop.pgdump", dump)
	outside := filepath.Join(e.root, "outside.conf")
	if err := os.WriteFile(outside, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(t *testing.T, place string){
		"owned by another user": func(t *testing.T, place string) {
			os.WriteFile(place, []byte("theirs\n"), 0o644)
			if err := os.Chown(place, 65534, 65534); err != nil { // nobody
				t.Fatal(err)
			}
		},
		"mode 0666": func(t *testing.T, place string) {
			os.WriteFile(place, []byte("open to all\n"), 0o666)
			os.Chmod(place, 0o666)
		},
		"hard link to a file outside": func(t *testing.T, place string) {
			if err := os.Link(outside, place); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			target := filepath.Join(e.root, "restore-"+strings.ReplaceAll(name, " ", "-"))
			place := filepath.Join(target, "db", "shop.pgdump")
			os.MkdirAll(filepath.Dir(place), 0o700)
			prepare(t, place)
			e.run("restore", "p", "--source", "db", "--target", target).mustCode(t, 0)
			got, err := os.ReadFile(place)
			if err != nil || !bytes.Equal(got, dump) {
				t.Errorf("restored dump: %q, %v; want %q", got, err, dump)
			}
			var st unix.Stat_t
			if err := unix.Lstat(place, &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o600 || st.Nlink != 1 {
				t.Errorf("restored dump: uid %d gid %d mode %o links %d, want a new file of root's, mode 600", st.Uid, st.Gid, st.Mode&0o7777, st.Nlink)
			}
			if b, _ := os.ReadFile(outside); string(b) != "keep me\n" {
				t.Errorf("the file outside the target became %q", b)
			}
		})
	}
}
