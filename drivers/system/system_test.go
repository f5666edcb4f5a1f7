package system

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestParsers(t *testing.T) {
	osr := ParseOSRelease("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nID=debian\n# comment\n\nVERSION_ID=\"12\"\n")
	if want := map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian", "ID": "debian", "VERSION_ID": "12"}; !reflect.DeepEqual(osr, want) {
		t.Errorf("os-release: %v", osr)
	}
	dpkg := ParseDpkg([]byte("ii \tadduser\t3.134\tall\nrc \tgone\t1.0\tamd64\nhi \theld\t2.0\tamd64\nbroken line\n"))
	if want := []Package{{"adduser", "3.134", "all"}, {"held", "2.0", "amd64"}}; !reflect.DeepEqual(dpkg, want) {
		t.Errorf("dpkg: %v", dpkg)
	}
	rpm := ParseRPM([]byte("zlib\t0:1.2.11-40.el9\tx86_64\nbash\t0:5.1.8-6.el9\tx86_64\n"))
	if want := []Package{{"bash", "0:5.1.8-6.el9", "x86_64"}, {"zlib", "0:1.2.11-40.el9", "x86_64"}}; !reflect.DeepEqual(rpm, want) {
		t.Errorf("rpm: %v", rpm)
	}
	units := ParseUnitFiles([]byte("ssh.service               enabled enabled\ncron.service enabled enabled\n\n"))
	if want := []string{"cron.service", "ssh.service"}; !reflect.DeepEqual(units, want) {
		t.Errorf("units: %v", units)
	}
}

type memWriter struct {
	name string
	buf  bytes.Buffer
}

func (m *memWriter) Create(_ context.Context, name, format string) (io.WriteCloser, error) {
	m.name = name
	return nopCloser{&m.buf}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestBackupOfThisHost(t *testing.T) {
	if _, err := os.Stat("/etc"); err != nil {
		t.Skip("no /etc")
	}
	extra := t.TempDir()
	os.WriteFile(filepath.Join(extra, "app.conf"), []byte("x=1\n"), 0o644)
	w := &memWriter{}
	stats, err := New(v1.SystemSource{ExtraPaths: []string{extra}}, Options{}).Backup(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&w.buf)
	var names []string
	var sum Summary
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d entries: %v", len(names), err)
		}
		names = append(names, h.Name)
		if h.Name == SummaryPath {
			if err := json.NewDecoder(tr).Decode(&sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(names) < 3 || names[0] != SummaryDir+"/" {
		t.Fatalf("entries start %v", names[:min(3, len(names))])
	}
	joined := "\n" + strings.Join(names, "\n") + "\n"
	for _, want := range []string{"\netc/\n", "\netc/hostname\n", "\n" + strings.TrimPrefix(extra, "/") + "/app.conf\n"} {
		if !strings.Contains(joined, want) {
			t.Errorf("archive lacks %q", strings.TrimSpace(want))
		}
	}
	host, _ := os.Hostname()
	if sum.Hostname != host || sum.FormatVersion != 1 || !contains(sum.Paths, "/etc") || !contains(sum.Paths, extra) {
		t.Errorf("summary: %+v", sum)
	}
	if sum.PackageManager == "dpkg" && (len(sum.Packages) == 0 || !strings.Contains(joined, "\n"+SummaryDir+"/dpkg-selections.txt\n")) {
		t.Errorf("dpkg host: %d packages", len(sum.Packages))
	}
	if stats.Meta[MetaHostname] != host || stats.Files == 0 {
		t.Errorf("stats %+v", stats)
	}

	// A missing extra path fails before anything is written.
	w = &memWriter{}
	_, err = New(v1.SystemSource{ExtraPaths: []string{filepath.Join(extra, "missing")}}, Options{}).Backup(context.Background(), w)
	if err == nil || !strings.Contains(err.Error(), "missing: no such file or directory") || w.name != "" {
		t.Errorf("missing path: %v (object %q)", err, w.name)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
