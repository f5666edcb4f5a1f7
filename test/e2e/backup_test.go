package e2e

import (
	"bytes"
	"crypto/rand"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// makeTree builds the tree a user backs up: nested directories, an empty
// one, symlinks, a hard link, files of several modes and mtimes, files the
// policy excludes, and a large sparse file.
func makeTree(t *testing.T, root string, bigSize int64) {
	t.Helper()
	mk := func(rel string, body []byte, mode os.FileMode, mtime time.Time) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	random := make([]byte, 3<<20)
	rand.Read(random)
	old := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	mk("www/index.html", []byte("<h1>hello</h1>\n"), 0o644, old)
	mk("www/app/main.js", bytes.Repeat([]byte("console.log('aegis');\n"), 5000), 0o644, old.Add(time.Hour))
	mk("www/app/secret.env", []byte("TOKEN=abc\n"), 0o600, old)
	mk("www/bin/run.sh", []byte("#!/bin/sh\necho run\n"), 0o755, old)
	mk("www/data/random.bin", random, 0o640, old)
	mk("www/deep/a/b/c/d/e/leaf.txt", []byte("leaf\n"), 0o644, old)
	mk("www/access.log", []byte("GET /\n"), 0o644, old)             // excluded: **/*.log
	mk("www/app/cache/page.html", []byte("cached\n"), 0o644, old)   // excluded: **/cache/**
	mk("www/app/logs/deep/error.log", []byte("boom\n"), 0o644, old) // excluded: **/*.log
	if err := os.MkdirAll(filepath.Join(root, "www/empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("index.html", filepath.Join(root, "www/home.html")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(root, "www/abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing-target", filepath.Join(root, "www/dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "www/bin/run.sh"), filepath.Join(root, "www/bin/run-again.sh")); err != nil {
		t.Fatal(err)
	}
	// A large file, sparse on disk: a few MB of data at both ends.
	big := filepath.Join(root, "www/data/big.img")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(random[:1<<20])
	f.WriteAt(random[1<<20:2<<20], bigSize-(1<<20))
	f.Close()
	os.Chtimes(big, old, old)
	for _, d := range []string{"www/deep/a/b/c/d/e", "www/deep/a/b/c/d", "www/empty", "www/app"} {
		os.Chtimes(filepath.Join(root, d), old, old)
	}
}

const webPolicy = `apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: disk
spec:
  local:
    path: @ROOT@/backups
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: web
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Berlin
  sources:
    - name: site
      files:
        paths: ["@ROOT@/src/www"]
        exclude: ["**/*.log", "**/cache/**"]
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`

// compareTrees asserts that got holds exactly what want holds: names, types,
// content, mode, mtime (not of symlinks), symlink targets, hard links.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		gp := filepath.Join(got, rel)
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: missing in restore: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(gp)
			if wl != gl {
				t.Errorf("%s: symlink to %q, want %q", rel, gl, wl)
			}
			return nil
		case wi.Mode().IsRegular():
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(gp)
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: content differs (%d bytes, want %d)", rel, len(gb), len(wb))
			}
			wst := wi.Sys().(*syscall.Stat_t)
			gst := gi.Sys().(*syscall.Stat_t)
			if wst.Nlink > 1 {
				if first, ok := inodes[wst.Ino]; ok {
					fi, _ := os.Lstat(filepath.Join(got, first))
					if !os.SameFile(fi, gi) {
						t.Errorf("%s: not a hard link of %s in the restore", rel, first)
					}
				} else {
					inodes[wst.Ino] = rel
				}
				if gst.Nlink != wst.Nlink {
					t.Errorf("%s: %d links, want %d", rel, gst.Nlink, wst.Nlink)
				}
			}
		}
		if !wi.ModTime().Equal(gi.ModTime()) && rel != "." {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if err == nil && !seen[rel] {
			t.Errorf("%s: in the restore but not in the source", rel)
		}
		return nil
	})
}

// excluded removes from a copy of the expectations what the policy excludes.
func withoutExcluded(t *testing.T, src string) string {
	t.Helper()
	want := filepath.Join(t.TempDir(), "want")
	cp := exec.Command("cp", "-a", src, want)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	for _, rel := range []string{"access.log", "app/cache/page.html", "app/logs/deep/error.log"} {
		if err := os.Remove(filepath.Join(want, rel)); err != nil {
			t.Fatal(err)
		}
	}
	// The cache directory itself stays (only its content is excluded), and
	// so do directories left empty by exclusions; restore their mtimes.
	for _, d := range []string{"app/cache", "app/logs/deep", "app/logs", "app", ""} {
		fi, err := os.Lstat(filepath.Join(src, d))
		if err == nil {
			os.Chtimes(filepath.Join(want, d), fi.ModTime(), fi.ModTime())
		}
	}
	return want
}

func TestOnceBackupAndRestore(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.root, "src")
	makeTree(t, src, 300<<20)
	e.write("web.yaml", webPolicy)

	r := e.run("--once")
	r.mustCode(t, 0)

	// The status sidecar tells what happened.
	st := entry(t, e.status("web.yaml"), v1.KindBackupPolicy, "web")
	if c := condition(t, st, v1.ConditionReady); c.Status != v1.ConditionTrue || c.Reason != "BackupSucceeded" {
		t.Errorf("Ready condition = %+v, want True/BackupSucceeded", c)
	}
	if c := condition(t, st, v1.ConditionValid); c.Status != v1.ConditionTrue {
		t.Errorf("Valid condition = %+v", c)
	}
	if st.LastSuccessfulTime == nil || st.NextScheduleTime == nil || st.LastRun == nil {
		t.Fatalf("status lacks times or last run: %+v", st)
	}
	if st.ObservedGeneration != 1 {
		t.Errorf("observedGeneration = %d, want 1", st.ObservedGeneration)
	}
	if got := st.NextScheduleTime.In(mustZone(t, "Europe/Berlin")); got.Hour() != 3 || got.Minute() != 0 {
		t.Errorf("nextScheduleTime = %v, want 03:00 Europe/Berlin", got)
	}
	if len(st.LastRun.Sources) != 1 || st.LastRun.Sources[0].Files < 8 || st.LastRun.Sources[0].BytesRead < 300<<20 {
		t.Errorf("last run sources = %+v", st.LastRun.Sources)
	}
	dst := entry(t, e.status("web.yaml"), v1.KindDestination, "disk")
	if c := condition(t, dst, v1.ConditionReachable); c.Status != v1.ConditionTrue {
		t.Errorf("destination Reachable = %+v", c)
	}

	snaps := e.snapshots("web")
	if len(snaps) != 1 {
		t.Fatalf("snapshots: got %d, want 1: %+v", len(snaps), snaps)
	}
	m := snaps[0].Manifest
	if m.Policy != "web" || m.Source != "site" || m.Encryption.Algorithm != "age" || m.Compression.Algorithm != "zstd" || len(m.Objects) != 1 {
		t.Errorf("manifest = %+v", m)
	}
	// A sparse 300 MB file of zeros compresses to almost nothing: the
	// stored size proves the stream was compressed.
	if snaps[0].Size > 20<<20 {
		t.Errorf("stored size %d, want well under 20 MiB", snaps[0].Size)
	}

	// A second pass right after runs nothing.
	r = e.run("--once")
	r.mustCode(t, 0)
	if !strings.Contains(r.stderr, "nothing was due") {
		t.Errorf("second --once: want 'nothing was due' in the log, got:\n%s", r.stderr)
	}
	if n := len(e.snapshots("web")); n != 1 {
		t.Errorf("after a second --once: %d snapshots, want 1", n)
	}

	// Restore reproduces the tree exactly, without the excluded files.
	target := filepath.Join(e.root, "restore")
	r = e.run("restore", "web", "--identity", e.identity, "--target", target)
	r.mustCode(t, 0)
	restored := filepath.Join(target, "site", strings.TrimPrefix(src, "/"), "www")
	compareTrees(t, withoutExcluded(t, filepath.Join(src, "www")), restored)
	if _, err := os.Stat(filepath.Join(target, "site", ".aegis-restore-incomplete")); !os.IsNotExist(err) {
		t.Errorf("incomplete marker left after a good restore: %v", err)
	}
	// The restored big file is sparse again.
	var stt syscall.Stat_t
	if err := syscall.Stat(filepath.Join(restored, "data/big.img"), &stt); err == nil && stt.Blocks*512 > 50<<20 {
		t.Errorf("restored big.img uses %d bytes on disk; want it sparse", stt.Blocks*512)
	}

	// The manual recovery of docs/format.md with stock tools: age -d | zstd -d | tar -x.
	manual := filepath.Join(e.root, "manual")
	os.MkdirAll(manual, 0o755)
	obj := filepath.Join(e.root, "backups", m.Host, "web", "site", m.ID, m.Objects[0].Key)
	sh := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d | tar -xf - -C "$3"`, "sh", e.identity, obj, manual)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("manual recovery: %v\n%s", err, out)
	}
	compareTrees(t, withoutExcluded(t, filepath.Join(src, "www")), filepath.Join(manual, strings.TrimPrefix(src, "/"), "www"))

	// Verify reads it all back.
	r = e.run("verify", "web", "--identity", e.identity)
	r.mustCode(t, 0)
	if !strings.Contains(r.stdout, "ok   web/site "+m.ID) {
		t.Errorf("verify output:\n%s", r.stdout)
	}

	// Per-run log and agent log exist.
	logs, _ := filepath.Glob(filepath.Join(e.logs, "backup-web-*.log"))
	if len(logs) != 1 {
		t.Errorf("run logs: %v", logs)
	}
	if _, err := os.Stat(filepath.Join(e.logs, "agent.log")); err != nil {
		t.Errorf("agent.log: %v", err)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
