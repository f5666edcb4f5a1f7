package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// systemSummary is the part of aegis-system/summary.json the test reads.
type systemSummary struct {
	Hostname       string            `json:"hostname"`
	OSRelease      map[string]string `json:"osRelease"`
	PackageManager string            `json:"packageManager"`
	Packages       []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"packages"`
	EnabledUnits []string `json:"enabledUnits"`
	Paths        []string `json:"paths"`
}

func TestSystemBackupAndRestore(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a dpkg host")
	}
	e := newEnv(t)
	extra := filepath.Join(e.root, "opt-app")
	os.MkdirAll(extra, 0o755)
	os.WriteFile(filepath.Join(extra, "app.conf"), []byte("listen=127.0.0.1\n"), 0o640)
	e.write("sys.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: sys
spec:
  schedule: "@daily"
  sources:
    - name: host
      system:
        extraPaths: ["`+extra+`"]
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`)
	start := time.Now()
	e.run("run", "sys").mustCode(t, 0)
	src := entry(t, e.status("sys.yaml"), v1.KindBackupPolicy, "sys").LastRun.Sources[0]
	host, _ := os.Hostname()
	if src.Meta["hostname"] != host || src.Meta["packages"] == "0" {
		t.Errorf("status meta %v", src.Meta)
	}

	target := filepath.Join(e.root, "restore")
	e.run("restore", "sys", "--identity", e.identity, "--target", target).mustCode(t, 0)
	root := filepath.Join(target, "host")

	// The summary lists this machine's packages and enabled units.
	var sum systemSummary
	b, err := os.ReadFile(filepath.Join(root, "aegis-system", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range sum.Packages {
		got = append(got, p.Name+" "+p.Version)
	}
	out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${binary:Package} ${Version}\n").Output()
	var want []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0][1] == 'i' {
			want = append(want, f[1]+" "+f[2])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("summary lists %d packages, dpkg-query %d", len(got), len(want))
	}
	if sum.Hostname != host || sum.PackageManager != "dpkg" || sum.OSRelease["ID"] == "" || !slices.Contains(sum.Paths, extra) {
		t.Errorf("summary: host %q, manager %q, os %v, paths %v", sum.Hostname, sum.PackageManager, sum.OSRelease, sum.Paths)
	}
	if out, err := exec.Command("systemctl", "list-unit-files", "--state=enabled", "--no-legend", "--no-pager").Output(); err == nil {
		var units []string
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) >= 2 {
				units = append(units, f[0])
			}
		}
		slices.Sort(units)
		if !slices.Equal(units, sum.EnabledUnits) {
			t.Errorf("enabled units %v, systemctl says %v", sum.EnabledUnits, units)
		}
	}
	if sel, err := os.ReadFile(filepath.Join(root, "aegis-system", "dpkg-selections.txt")); err != nil || !bytes.Contains(sel, []byte("\tinstall")) {
		t.Errorf("dpkg selections: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, strings.TrimPrefix(extra, "/"), "app.conf")); err != nil || string(b) != "listen=127.0.0.1\n" {
		t.Errorf("extra path: %q %v", b, err)
	}

	// /etc comes back byte for byte (what changed since the backup began
	// excepted: others may write to /etc while the tests run).
	compared, changed := 0, 0
	filepath.WalkDir("/etc", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if time.Unix(st.Ctim.Unix()).After(start.Add(-time.Second)) {
			changed++
			return nil
		}
		gp := filepath.Join(root, p[1:])
		gi, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: missing in the restore: %v", p, err)
			return nil
		}
		if gi.Mode() != fi.Mode() {
			t.Errorf("%s: mode %v, want %v", p, gi.Mode(), fi.Mode())
		}
		gst := gi.Sys().(*syscall.Stat_t)
		if gst.Uid != st.Uid || gst.Gid != st.Gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, gst.Uid, gst.Gid, st.Uid, st.Gid)
		}
		switch {
		case fi.Mode().IsRegular():
			a, err1 := os.ReadFile(p)
			b, err2 := os.ReadFile(gp)
			if err1 == nil && (err2 != nil || !bytes.Equal(a, b)) {
				t.Errorf("%s: content differs", p)
			}
			compared++
		case fi.Mode()&fs.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(gp)
			if a != b {
				t.Errorf("%s: symlink to %q, want %q", p, b, a)
			}
		}
		return nil
	})
	if compared < 50 {
		t.Errorf("only %d files of /etc compared", compared)
	}
	t.Logf("/etc: %d files compared byte for byte, %d entries changed during the test and skipped", compared, changed)
}
