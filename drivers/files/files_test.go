package files

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// Mtimes with nanoseconds, to prove sub-second precision survives.
var (
	fileTime = time.Unix(1700000000, 123456789)
	dirTime  = time.Unix(1600000000, 987654321)
)

// makeTree builds the test tree below a new temporary directory and returns
// the path of its root, src. See wantNames for what it holds.
func makeTree(t *testing.T, base string) string {
	t.Helper()
	src := filepath.Join(base, "src")
	mkdir := func(rel string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fileTime, fileTime); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("", 0o755)
	mkdir("bin", 0o755)
	mkdir("cache/inner", 0o755)
	mkdir("dir/sub/cache/c1", 0o755)
	mkdir("empty", 0o700)
	mkdir("tmp", 0o755)
	write("a.txt", "hello, world\n", 0o600)
	write("app.log", "log line\n", 0o644)
	write("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write("bin/suid", "not really setuid\n", 0o755|os.ModeSetuid)
	write("cache/junk", "junk", 0o644)
	write("cache/inner/junk", "junk", 0o644)
	write("dir/sub/deep.txt", "deep\n", 0o640)
	write("dir/sub/x.log", "excluded\n", 0o644)
	write("dir/sub/cache/c1/junk", "junk", 0o644)
	write("tmp/t.txt", "temporary", 0o644)
	if err := os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "hard.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/target", filepath.Join(src, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A socket, which the backup skips.
	if l, err := net.Listen("unix", filepath.Join(src, "sock")); err == nil {
		t.Cleanup(func() { l.Close() })
	}
	// A sparse-looking file: data, 2 MiB of zeros, data.
	big := make([]byte, 3<<20)
	if _, err := rand.Read(big[:512<<10]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(big[len(big)-512<<10:]); err != nil {
		t.Fatal(err)
	}
	write("big.bin", string(big), 0o644)
	for _, d := range []string{"dir/sub", "dir", "empty", "bin"} {
		if err := os.Chtimes(filepath.Join(src, d), dirTime, dirTime); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// treeSpec excludes one pattern of each kind from the tree of makeTree.
func treeSpec(src string) v1.FilesSource {
	return v1.FilesSource{
		Paths:   []string{src},
		Exclude: []string{"*.log", "**/cache/**", src + "/tmp"},
	}
}

// wantNames lists the entries of the archive of treeSpec, in order.
func wantNames(src string) []string {
	var names []string
	for _, d := range ancestors(src) {
		names = append(names, d[1:]+"/")
	}
	s := src[1:]
	return append(names,
		s+"/",
		s+"/a.txt",
		s+"/abs-link",
		s+"/big.bin",
		s+"/bin/",
		s+"/bin/run.sh",
		s+"/bin/suid",
		s+"/cache/",
		s+"/dir/",
		s+"/dir/sub/",
		s+"/dir/sub/cache/",
		s+"/dir/sub/deep.txt",
		s+"/empty/",
		s+"/fifo",
		s+"/hard.txt",
		s+"/rel-link",
	)
}

func writeTarBuf(t *testing.T, spec v1.FilesSource, opts Options) ([]byte, drivers.SourceStats) {
	t.Helper()
	var buf bytes.Buffer
	stats, err := WriteTar(context.Background(), &buf, spec, opts)
	if err != nil {
		t.Fatalf("WriteTar: %v", err)
	}
	return buf.Bytes(), stats
}

func readHeaders(t *testing.T, archive []byte) []*tar.Header {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		hdrs = append(hdrs, h)
	}
}

func names(hdrs []*tar.Header) []string {
	var out []string
	for _, h := range hdrs {
		out = append(out, h.Name)
	}
	return out
}

func TestWriteTarEntries(t *testing.T) {
	src := makeTree(t, t.TempDir())
	for _, opts := range []Options{{}, {Workers: -1}, {Workers: 1, ReadAhead: 4096}} {
		archive, stats := writeTarBuf(t, treeSpec(src), opts)
		hdrs := readHeaders(t, archive)
		if got, want := names(hdrs), wantNames(src); !slices.Equal(got, want) {
			t.Fatalf("opts %+v: entries:\n got %q\nwant %q", opts, got, want)
		}
		if len(stats.Warnings) != 0 {
			t.Errorf("warnings: %q", stats.Warnings)
		}
		// a.txt, big.bin, run.sh, suid, deep.txt, hard.txt
		if got, want := stats.Files, int64(6); got != want {
			t.Errorf("Files = %d, want %d", got, want)
		}
		if got, want := stats.BytesRead, int64(len("hello, world\n")+3<<20+len("#!/bin/sh\necho hi\n")+len("not really setuid\n")+len("deep\n")); got != want {
			t.Errorf("BytesRead = %d, want %d", got, want)
		}
		byName := map[string]*tar.Header{}
		for _, h := range hdrs {
			byName[strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), src[1:]+"/")] = h
		}
		checks := []struct {
			name     string
			typ      byte
			mode     int64
			linkname string
			mtime    time.Time
		}{
			{"a.txt", tar.TypeReg, 0o600, "", fileTime},
			{"hard.txt", tar.TypeLink, 0o600, src[1:] + "/a.txt", fileTime},
			{"rel-link", tar.TypeSymlink, 0o777, "a.txt", time.Time{}},
			{"abs-link", tar.TypeSymlink, 0o777, "/nonexistent/target", time.Time{}},
			{"bin/run.sh", tar.TypeReg, 0o755, "", fileTime},
			{"bin/suid", tar.TypeReg, 0o4755, "", fileTime},
			{"dir/sub", tar.TypeDir, 0o755, "", dirTime},
			{"empty", tar.TypeDir, 0o700, "", dirTime},
			{"fifo", tar.TypeFifo, 0o640, "", time.Time{}},
		}
		for _, c := range checks {
			h := byName[c.name]
			if h == nil {
				t.Errorf("%s: missing", c.name)
				continue
			}
			if h.Typeflag != c.typ || h.Mode != c.mode || h.Linkname != c.linkname {
				t.Errorf("%s: got type %q mode %o link %q, want %q %o %q", c.name, h.Typeflag, h.Mode, h.Linkname, c.typ, c.mode, c.linkname)
			}
			if !c.mtime.IsZero() && !h.ModTime.Equal(c.mtime) {
				t.Errorf("%s: mtime %v, want %v", c.name, h.ModTime, c.mtime)
			}
			if h.Uid != os.Getuid() {
				t.Errorf("%s: uid %d, want %d", c.name, h.Uid, os.Getuid())
			}
		}
	}
}

func TestOverlappingPathsStoredOnce(t *testing.T) {
	src := makeTree(t, t.TempDir())
	spec := treeSpec(src)
	spec.Paths = []string{src + "/dir/sub", src, src + "/dir/", src}
	archive, _ := writeTarBuf(t, spec, Options{})
	if got, want := names(readHeaders(t, archive)), wantNames(src); !slices.Equal(got, want) {
		t.Fatalf("entries:\n got %q\nwant %q", got, want)
	}

	// Two sibling paths share their parents once.
	spec.Paths = []string{src + "/dir", src + "/bin"}
	archive, _ = writeTarBuf(t, spec, Options{})
	got := names(readHeaders(t, archive))
	var want []string
	for _, d := range ancestors(src + "/bin") {
		want = append(want, d[1:]+"/")
	}
	s := src[1:]
	want = append(want, s+"/bin/", s+"/bin/run.sh", s+"/bin/suid", s+"/dir/", s+"/dir/sub/", s+"/dir/sub/cache/", s+"/dir/sub/deep.txt")
	if !slices.Equal(got, want) {
		t.Fatalf("entries:\n got %q\nwant %q", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	src := makeTree(t, t.TempDir())
	archive, _ := writeTarBuf(t, treeSpec(src), Options{})
	target := t.TempDir()
	stats, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{})
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if len(stats.Warnings) != 0 {
		t.Errorf("warnings: %q", stats.Warnings)
	}
	// a.txt, big.bin, run.sh, suid, deep.txt
	if stats.Files != 5 || stats.Links != 3 || stats.Bytes != int64(13+3<<20+18+18+5) {
		t.Errorf("stats = %+v", stats)
	}
	out := filepath.Join(target, src)

	for _, rel := range []string{"a.txt", "big.bin", "bin/run.sh", "bin/suid", "dir/sub/deep.txt"} {
		want, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", rel)
		}
	}
	for _, rel := range []string{"a.txt", "bin/run.sh", "bin/suid", "dir", "dir/sub", "dir/sub/deep.txt", "empty", "fifo", "bin", "cache"} {
		want, err := os.Lstat(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.Lstat(filepath.Join(out, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if got.Mode() != want.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, got.Mode(), want.Mode())
		}
		if !got.ModTime().Equal(want.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, got.ModTime(), want.ModTime())
		}
	}
	for rel, want := range map[string]string{"rel-link": "a.txt", "abs-link": "/nonexistent/target"} {
		got, err := os.Readlink(filepath.Join(out, rel))
		if err != nil || got != want {
			t.Errorf("%s: link %q, %v; want %q", rel, got, err, want)
		}
	}
	a, err1 := os.Stat(filepath.Join(out, "a.txt"))
	h, err2 := os.Stat(filepath.Join(out, "hard.txt"))
	if err1 != nil || err2 != nil || !os.SameFile(a, h) {
		t.Errorf("hard.txt is not a hard link of a.txt: %v %v", err1, err2)
	}
	// Excluded entries are not there; cache directories are, empty.
	for _, rel := range []string{"app.log", "dir/sub/x.log", "tmp", "cache/junk", "cache/inner", "dir/sub/cache/c1", "sock"} {
		if _, err := os.Lstat(filepath.Join(out, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: excluded but restored (%v)", rel, err)
		}
	}
	// The run of zeros in big.bin is a hole again.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(out, "big.bin"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used >= 2<<20 {
		t.Errorf("big.bin uses %d bytes on disk, want its 2 MiB of zeros left as a hole", used)
	}
	// The parents of the configured path are directories with their modes.
	wantFi, _ := os.Stat(filepath.Dir(src))
	gotFi, err := os.Stat(filepath.Dir(out))
	if err != nil || gotFi.Mode() != wantFi.Mode() {
		t.Errorf("parent: %v, %v; want mode %v", gotFi, err, wantFi.Mode())
	}

	// Extracting again over the result replaces what is there.
	if err := os.WriteFile(filepath.Join(out, "a.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{}); err != nil {
		t.Fatalf("Extract again: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "hard.txt")); string(got) != "hello, world\n" {
		t.Errorf("hard.txt after second extract: %q", got)
	}
}

func TestGNUTarReadsArchive(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar binary")
	}
	src := makeTree(t, t.TempDir())
	archive, _ := writeTarBuf(t, treeSpec(src), Options{})
	file := filepath.Join(t.TempDir(), "files.tar")
	if err := os.WriteFile(file, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tarBin, "-tvf", file)
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil || stderr.Len() > 0 || len(out) == 0 {
		t.Fatalf("tar -tvf: %v: %s", err, stderr.String())
	}
	out, err := exec.Command(tarBin, "-tf", file).Output()
	if err != nil {
		t.Fatalf("tar -tf: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if want := wantNames(src); !slices.Equal(got, want) {
		t.Errorf("tar -tf:\n got %q\nwant %q", got, want)
	}
	// And GNU tar unpacks it to the same bytes.
	dest := t.TempDir()
	if out, err := exec.Command(tarBin, "-xf", file, "-C", dest).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v: %s", err, out)
	}
	for _, rel := range []string{"a.txt", "big.bin", "hard.txt"} {
		want, _ := os.ReadFile(filepath.Join(src, rel))
		got, err := os.ReadFile(filepath.Join(dest, src, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s extracted by tar differs (%v)", rel, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dest, src, "a.txt"))
	if err != nil || !fi.ModTime().Equal(fileTime) {
		t.Errorf("a.txt extracted by tar: mtime %v (%v), want %v", fi.ModTime(), err, fileTime)
	}
}

func TestExcludeRules(t *testing.T) {
	x, err := newExcluder([]string{"*.log", "**/*.tmp", "**/cache/**", "/var/www/tmp", "build/", "www/uploads/*.bak"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"/app.log", false, true},
		{"/var/log/syslog.log", false, true},
		{"/var/log", true, false},
		{"/a/b/c.tmp", false, true},
		{"/c.tmp", false, true},
		{"/var/cache", true, false}, // the directory is kept, empty
		{"/var/cache/apt", true, true},
		{"/var/www/cache/x/y.html", false, true},
		{"/cache", true, false},
		{"/cache/f", false, true},
		{"/var/www/tmp", true, true},
		{"/var/www/tmp2", true, false},
		{"/srv/var/www/tmp", true, false}, // absolute: only that path
		{"/src/build", true, true},
		{"/src/build", false, false}, // directories only
		{"/srv/www/uploads/a.bak", false, true},
		{"/srv/www/uploads/sub/a.bak", false, false},
		{"/var/www/index.html", false, false},
	}
	for _, tt := range tests {
		_, got := x.match(tt.path, tt.isDir)
		if got != tt.want {
			t.Errorf("match(%q, dir=%v) = %v, want %v", tt.path, tt.isDir, got, tt.want)
		}
	}
	// A configured path is excluded through its parents too.
	if pat, ok := x.matchPath("/var/www/tmp/keep", true); !ok || pat != "/var/www/tmp" {
		t.Errorf("matchPath below an excluded directory = %q, %v", pat, ok)
	}

	if _, err := newExcluder([]string{"[unclosed"}); err == nil || !strings.Contains(err.Error(), `"[unclosed"`) {
		t.Errorf("invalid pattern: err = %v", err)
	}
}

func TestDescent(t *testing.T) {
	tests := []struct {
		name                   string
		oneFS, conf, pass, lds bool
		ref, dev               uint64
		want                   descentMode
	}{
		{"same device", true, false, false, false, 1, 1, walkAll},
		{"mount point", true, false, false, false, 1, 2, skipContents},
		{"mount point without oneFileSystem", false, false, false, false, 1, 2, walkAll},
		{"mount point above a configured path", true, false, false, true, 1, 2, walkToConfigured},
		{"configured path on another device", true, true, false, false, 1, 2, walkAll},
		{"on the way to a configured path", true, false, true, true, 2, 2, walkToConfigured},
	}
	for _, tt := range tests {
		if got := descent(tt.oneFS, tt.conf, tt.pass, tt.lds, tt.ref, tt.dev); got != tt.want {
			t.Errorf("%s: descent = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestOneFileSystemMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; the decision is covered by TestDescent")
	}
	src := filepath.Join(t.TempDir(), "src")
	mnt := filepath.Join(src, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "before.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0750"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	for _, f := range []string{"inside.txt", "keep/k.txt"} {
		p := filepath.Join(mnt, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("y"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := src[1:]
	tests := []struct {
		name  string
		paths []string
		oneFS bool
		want  []string
	}{
		{"oneFileSystem", []string{src}, true, []string{s + "/", s + "/before.txt", s + "/mnt/"}},
		{"whole tree", []string{src}, false, []string{s + "/", s + "/before.txt", s + "/mnt/", s + "/mnt/inside.txt", s + "/mnt/keep/", s + "/mnt/keep/k.txt"}},
		{"configured below the mount", []string{src, mnt + "/keep"}, true, []string{s + "/", s + "/before.txt", s + "/mnt/", s + "/mnt/keep/", s + "/mnt/keep/k.txt"}},
		{"mount configured", []string{mnt}, true, []string{s + "/", s + "/mnt/", s + "/mnt/inside.txt", s + "/mnt/keep/", s + "/mnt/keep/k.txt"}},
	}
	for _, tt := range tests {
		archive, _ := writeTarBuf(t, v1.FilesSource{Paths: tt.paths, OneFileSystem: tt.oneFS}, Options{})
		hdrs := readHeaders(t, archive)
		got := slices.DeleteFunc(names(hdrs), func(n string) bool { return !strings.HasPrefix(n, s+"/") })
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
		for _, h := range hdrs {
			if h.Name == s+"/mnt/" && h.Mode != 0o750 {
				t.Errorf("%s: mount point stored with mode %o, want the mounted root's 0750", tt.name, h.Mode)
			}
		}
	}
}

// TestUnreadable needs a user that root's privileges do not cover: as root,
// it drops to nobody for the walk.
func TestUnreadable(t *testing.T) {
	base, err := os.MkdirTemp("", "aegis-files-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(base, "src")
	for _, d := range []string{"src", "src/locked"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"ok.txt", "secret.txt", "locked/inner.txt"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "secret.txt"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "locked"), 0o755) })
	if os.Geteuid() == 0 {
		// Setresuid changes every thread of the process; the saved uid 0
		// lets the test come back.
		if err := syscall.Setresuid(65534, 65534, 0); err != nil {
			t.Skipf("cannot drop to nobody: %v", err)
		}
		defer func() {
			if err := syscall.Setresuid(0, 0, 0); err != nil {
				panic("cannot get root back: " + err.Error())
			}
		}()
	}
	archive, stats := writeTarBuf(t, v1.FilesSource{Paths: []string{src}}, Options{})
	s := src[1:]
	got := slices.DeleteFunc(names(readHeaders(t, archive)), func(n string) bool { return !strings.HasPrefix(n, s+"/") })
	if want := []string{s + "/", s + "/ok.txt"}; !slices.Equal(got, want) {
		t.Errorf("entries:\n got %q\nwant %q", got, want)
	}
	want := []string{"skipped " + src + "/locked: permission denied", "skipped " + src + "/secret.txt: permission denied"}
	if !slices.Equal(stats.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", stats.Warnings, want)
	}
	if stats.Files != 1 {
		t.Errorf("Files = %d, want 1", stats.Files)
	}
}

func TestConfiguredPathErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := WriteTar(context.Background(), io.Discard, v1.FilesSource{Paths: []string{dir, "/nonexistent/aegis", "relative"}, Exclude: []string{"a[b"}}, Options{})
	if err == nil {
		t.Fatal("WriteTar: no error")
	}
	for _, want := range []string{"path /nonexistent/aegis: no such file or directory", `path "relative": not an absolute path`, `exclude pattern "a[b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !drivers.IsPermanent(err) {
		t.Errorf("error %v is not permanent", err)
	}
}

func TestConfiguredSymlinkAndExcludedPaths(t *testing.T) {
	src := makeTree(t, t.TempDir())
	spec := treeSpec(src)
	spec.Paths = []string{src + "/rel-link", src + "/tmp/t.txt", src + "/dir/sub/cache"}
	archive, stats := writeTarBuf(t, spec, Options{})
	s := src[1:]
	got := slices.DeleteFunc(names(readHeaders(t, archive)), func(n string) bool { return !strings.HasPrefix(n, s+"/") })
	if want := []string{s + "/", s + "/dir/", s + "/dir/sub/", s + "/dir/sub/cache/", s + "/rel-link"}; !slices.Equal(got, want) {
		t.Errorf("entries:\n got %q\nwant %q", got, want)
	}
	want := []string{
		"path " + src + "/rel-link is a symlink to a.txt: stored as a symlink, not followed",
		"path " + src + "/tmp/t.txt is excluded by pattern \"" + src + "/tmp\"",
	}
	if !slices.Equal(stats.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", stats.Warnings, want)
	}
}

// TestShrinkAndGrow feeds the writer files whose size changed after they
// were stat'ed, by giving it a header size that differs from the file's.
func TestShrinkAndGrow(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ahead := range []bool{false, true} {
		for _, tt := range []struct {
			size    int64
			want    string
			warning string
		}{
			{4, "0123", ""},
			{16, "0123456789\x00\x00\x00\x00\x00\x00", file + ": shrank from 16 to 10 bytes while read, padded with zeros"},
		} {
			fd, err := unix.Open(file, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			e := &entry{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: tt.size, Mode: 0o644}, path: file, fd: fd}
			var buf bytes.Buffer
			a := &archiver{tw: tar.NewWriter(&buf), buf: make([]byte, copyBufSize), links: map[devIno]string{}, sem: semaphore.NewWeighted(1 << 20), log: slog.New(slog.DiscardHandler)}
			if ahead {
				e.ahead, e.weight, e.done = true, 1, make(chan struct{})
				_ = a.sem.Acquire(context.Background(), 1)
				reads := make(chan *entry, 1)
				reads <- e
				close(reads)
				readAhead(context.Background(), reads)
			}
			if err := a.write(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			if err := a.tw.Close(); err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(&buf)
			if _, err := tr.Next(); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(tr)
			if string(got) != tt.want {
				t.Errorf("ahead=%v size %d: content %q, want %q", ahead, tt.size, got, tt.want)
			}
			var warnings []string
			if tt.warning != "" {
				warnings = []string{tt.warning}
			}
			if !slices.Equal(a.stats.Warnings, warnings) {
				t.Errorf("ahead=%v size %d: warnings %q, want %q", ahead, tt.size, a.stats.Warnings, warnings)
			}
		}
	}
}

// memObjects is an ObjectWriter keeping one object in memory.
type memObjects struct {
	name, format string
	buf          bytes.Buffer
	closed       bool
}

func (m *memObjects) Create(_ context.Context, name, format string) (io.WriteCloser, error) {
	m.name, m.format = name, format
	return m, nil
}

func (m *memObjects) Write(p []byte) (int, error) { return m.buf.Write(p) }
func (m *memObjects) Close() error                { m.closed = true; return nil }

func TestBackup(t *testing.T) {
	src := makeTree(t, t.TempDir())
	out := &memObjects{}
	stats, err := New(treeSpec(src), Options{}).Backup(context.Background(), out)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if out.name != "files.tar" || out.format != "tar" || !out.closed {
		t.Errorf("object %q format %q closed %v", out.name, out.format, out.closed)
	}
	if got, want := names(readHeaders(t, out.buf.Bytes())), wantNames(src); !slices.Equal(got, want) {
		t.Errorf("entries:\n got %q\nwant %q", got, want)
	}
	if stats.Files != 6 {
		t.Errorf("Files = %d", stats.Files)
	}

	out = &memObjects{}
	if _, err := New(v1.FilesSource{Paths: []string{"/nonexistent/aegis"}}, Options{}).Backup(context.Background(), out); err == nil || out.name != "" {
		t.Errorf("missing path: err %v, object %q created", err, out.name)
	}
}

// cancelWriter cancels its context once it has taken n bytes.
type cancelWriter struct {
	n      int
	cancel context.CancelFunc
	err    error
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.n -= len(p)
	if w.n <= 0 {
		if w.err != nil {
			return 0, w.err
		}
		w.cancel()
	}
	return len(p), nil
}

func TestCancelAndWriteError(t *testing.T) {
	src := makeTree(t, t.TempDir())
	for i := range 200 {
		if err := os.WriteFile(filepath.Join(src, "dir", "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String()), bytes.Repeat([]byte{1}, 100<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := WriteTar(ctx, &cancelWriter{n: 1 << 20, cancel: cancel}, treeSpec(src), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}

	boom := errors.New("disk full")
	_, err = WriteTar(context.Background(), &cancelWriter{n: 1 << 20, err: boom}, treeSpec(src), Options{})
	if !errors.Is(err, boom) {
		t.Errorf("write error: err = %v", err)
	}
}

func BenchmarkWriteTar(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	var total int64
	data := make([]byte, 8<<20)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		dir := filepath.Join(src, "d"+string(rune('a'+i%20)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		size := 1<<10 + (i*7919)%(15<<10) // 1 to 16 KiB
		if err := os.WriteFile(filepath.Join(dir, "f"+time.Duration(i).String()), data[:size], 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(size)
	}
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(src, "large"+string(rune('0'+i))), data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	spec := v1.FilesSource{Paths: []string{src}}
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"readahead", Options{}},
		{"serial", Options{Workers: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				if _, err := WriteTar(context.Background(), io.Discard, spec, bc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestSymlinkOnTheWayToConfiguredPath(t *testing.T) {
	src := makeTree(t, t.TempDir())
	if err := os.Symlink("dir", filepath.Join(src, "linkdir")); err != nil {
		t.Fatal(err)
	}
	s := src[1:]
	tests := []struct {
		name  string
		paths []string
		want  []string
	}{
		{"below a walked symlink", []string{src + "/bin", src + "/linkdir/sub"}, []string{
			s + "/bin/", s + "/bin/run.sh", s + "/bin/suid",
			s + "/linkdir/sub/", s + "/linkdir/sub/cache/", s + "/linkdir/sub/deep.txt",
		}},
		{"the symlink is walked", []string{src, src + "/linkdir/sub"}, nil},
	}
	for _, tt := range tests {
		spec := treeSpec(src)
		spec.Paths = tt.paths
		archive, stats := writeTarBuf(t, spec, Options{})
		hdrs := readHeaders(t, archive)
		got := slices.DeleteFunc(names(hdrs), func(n string) bool { return !strings.HasPrefix(n, s+"/") })
		if len(stats.Warnings) != 0 {
			t.Errorf("%s: warnings %q", tt.name, stats.Warnings)
		}
		if tt.want != nil {
			// The parents of the configured paths, linkdir included, are directories.
			want := append([]string{s + "/"}, tt.want[:3]...)
			want = append(want, s+"/linkdir/")
			want = append(want, tt.want[3:]...)
			if !slices.Equal(got, want) {
				t.Errorf("%s:\n got %q\nwant %q", tt.name, got, want)
			}
		} else {
			// Everything of src, with linkdir stored as the directory it
			// leads to, walked only toward the configured path.
			want := slices.Clone(wantNames(src)[len(ancestors(src)):])
			i := slices.Index(want, s+"/rel-link")
			want = slices.Insert(want, i, s+"/linkdir/", s+"/linkdir/sub/", s+"/linkdir/sub/cache/", s+"/linkdir/sub/deep.txt")
			if !slices.Equal(got, want) {
				t.Errorf("%s:\n got %q\nwant %q", tt.name, got, want)
			}
		}
		for _, h := range hdrs {
			if h.Name == s+"/linkdir/" && h.Typeflag != tar.TypeDir {
				t.Errorf("%s: linkdir stored as type %q", tt.name, h.Typeflag)
			}
		}
	}
}

func BenchmarkExtract(b *testing.B) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, 16<<10)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	var total int64
	for d := range 20 {
		dir := "srv/data/d" + string(rune('a'+d)) + "/"
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			size := 1<<10 + (i*7919)%(15<<10)
			if err := tw.WriteHeader(&tar.Header{Name: dir + "f" + time.Duration(i).String(), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
				b.Fatal(err)
			}
			tw.Write(data[:size])
			total += int64(size)
		}
	}
	tw.Close()
	archive := buf.Bytes()
	b.SetBytes(total)
	target := b.TempDir()
	for b.Loop() {
		if _, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
