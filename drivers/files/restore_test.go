package files

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// needTool returns the path of a command the test drives. Under CI=true a
// missing one fails the test: hack/deps.sh installs it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: hack/deps.sh installs it", name)
		}
		t.Skipf("%s is missing: install it with hack/deps.sh", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestExtractListsEntriesNotRestored(t *testing.T) {
	target := t.TempDir()
	// A directory that is not empty stands where the archive has a file.
	if err := os.MkdirAll(filepath.Join(target, "busy", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "busy", "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := buildTar(t, []tarEntry{
		{name: "busy", typ: tar.TypeReg, body: "file"},
		{name: "plain", typ: tar.TypeReg, body: "a file"},
		{name: "plain/child", typ: tar.TypeReg, body: "below a file"},
		{name: "plain/dir/", typ: tar.TypeDir},
		{name: "hl", typ: tar.TypeLink, linkname: "missing"},
		{name: "odd", typ: 'Z'},
		{name: "../out", typ: tar.TypeReg, body: "x"},
		{name: "ok", typ: tar.TypeReg, body: "fine"},
	})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	stats, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{Logger: log})
	if _, ok := err.(*IncompleteError); !ok {
		t.Fatalf("err = %v, want an *IncompleteError", err)
	}
	want := `refused 1 entry that would land outside ` + target + `: "../out"; ` +
		`5 entries not restored in ` + target + `: "busy" (a directory that is not empty is in its place), ` +
		`"plain/child" (its parent plain is not a directory), "plain/dir/" (its parent plain is not a directory), ` +
		`"hl" (the target of the hard link, "missing", is missing), "odd" (unsupported entry type 'Z')`
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	wantSkipped := []Skipped{
		{"busy", "a directory that is not empty is in its place"},
		{"plain/child", "its parent plain is not a directory"},
		{"plain/dir/", "its parent plain is not a directory"},
		{"hl", `the target of the hard link, "missing", is missing`},
		{"odd", "unsupported entry type 'Z'"},
		{"../out", reasonRefused},
	}
	if !slices.Equal(stats.Skipped, wantSkipped) {
		t.Errorf("skipped:\n got %q\nwant %q", stats.Skipped, wantSkipped)
	}
	if stats.Files != 2 {
		t.Errorf("files = %d, want 2", stats.Files)
	}
	for _, line := range []string{
		`level=WARN msg="files: entry not restored" entry=busy reason="a directory that is not empty is in its place"`,
		`level=WARN msg="files: entry not restored" entry=../out reason="refused: it would land outside the target"`,
	} {
		if !strings.Contains(logs.String(), line+"\n") {
			t.Errorf("log lacks %s:\n%s", line, logs.String())
		}
	}
	for name, body := range map[string]string{"ok": "fine", "plain": "a file", "busy/keep": "keep"} {
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != body {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
}

func TestExtractListsSpecialFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating device nodes needs root")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "loop", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7, Devminor: 0},
		{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600},
		{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755},
		{Name: "sgid/", Typeflag: tar.TypeDir, Mode: 0o2775},
		{Name: "both", Typeflag: tar.TypeReg, Mode: 0o6755},
		{Name: "plain", Typeflag: tar.TypeReg, Mode: 0o755},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	target := t.TempDir()
	stats, err := Extract(context.Background(), &buf, target, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Special{
		{"null", "character device 1:3"}, {"loop", "block device 7:0"}, {"fifo", "FIFO"},
		{"suid", "setuid file"}, {"sgid/", "setgid directory"}, {"both", "setuid and setgid file"},
	}
	if !slices.Equal(stats.Special, want) {
		t.Errorf("special:\n got %q\nwant %q", stats.Special, want)
	}
	for name, mode := range map[string]uint32{
		"null": unix.S_IFCHR | 0o666, "loop": unix.S_IFBLK | 0o660, "fifo": unix.S_IFIFO | 0o600,
		"suid": unix.S_IFREG | unix.S_ISUID | 0o755, "sgid": unix.S_IFDIR | unix.S_ISGID | 0o775,
		"both": unix.S_IFREG | unix.S_ISUID | unix.S_ISGID | 0o755,
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(target, name), &st); err != nil || st.Mode != mode {
			t.Errorf("%s: mode %o, %v; want %o", name, st.Mode, err, mode)
		}
	}
}

// paxBlock is one tar header block, ustar, with the given fields.
func paxBlock(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// sparseTar crafts an archive with one sparse entry (GNU PAX format 0.1) of
// the declared size whose first and last 4 bytes are "head" and "tail",
// then a regular file "after".
func sparseTar(size int64) []byte {
	var recs string
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "0"}, {"GNU.sparse.minor", "1"}, {"GNU.sparse.name", "huge"},
		{"GNU.sparse.size", strconv.FormatInt(size, 10)}, {"GNU.sparse.numblocks", "2"},
		{"GNU.sparse.map", fmt.Sprintf("0,4,%d,4", size-4)},
	} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec)
		for len(strconv.Itoa(n))+len(rec) != n {
			n = len(strconv.Itoa(n)) + len(rec)
		}
		recs += strconv.Itoa(n) + rec
	}
	var out []byte
	out = append(out, paxBlock("PaxHeaders/huge", 'x', int64(len(recs)))...)
	out = append(out, pad([]byte(recs))...)
	out = append(out, paxBlock("GNUSparseFile.0/huge", '0', 8)...)
	out = append(out, pad([]byte("headtail"))...)
	out = append(out, paxBlock("after", '0', 5)...)
	out = append(out, pad([]byte("after"))...)
	return append(out, make([]byte, 1024)...)
}

func TestScanTarDoesNotExpandHoles(t *testing.T) {
	// 1 EiB of holes: expanding them would take years.
	archive := sparseTar(1 << 60)
	hdr, err := tar.NewReader(bytes.NewReader(archive)).Next()
	if err != nil || hdr.Name != "huge" || hdr.Size != 1<<60 || !IsSparse(hdr) {
		t.Fatalf("crafted entry: %+v, %v", hdr, err)
	}
	n, err := ScanTar(context.Background(), bytes.NewReader(archive))
	if err != nil || n != 13 {
		t.Errorf("ScanTar = %d, %v; want the 13 bytes stored", n, err)
	}
}

func TestExtractSparseEntry(t *testing.T) {
	target := t.TempDir()
	const size = 1 << 40
	stats, err := Extract(context.Background(), bytes.NewReader(sparseTar(size)), target, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 2 || stats.Bytes != size+5 {
		t.Errorf("stats = %+v", stats)
	}
	f, err := os.Open(filepath.Join(target, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Size != size || st.Blocks*512 > 1<<20 {
		t.Errorf("huge: size %d, %d bytes allocated, %v; want %d bytes, holes left unallocated", st.Size, st.Blocks*512, err, size)
	}
	head, tail := make([]byte, 4), make([]byte, 4)
	f.ReadAt(head, 0)
	f.ReadAt(tail, size-4)
	if string(head) != "head" || string(tail) != "tail" {
		t.Errorf("huge holds %q ... %q", head, tail)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "after")); string(b) != "after" {
		t.Errorf("after: %q", b)
	}
}

func TestExtractSparseEntryTooLarge(t *testing.T) {
	target := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(target, &fs); err != nil || fs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skip("the temporary directory is not on ext4, whose files stop at 16 TiB")
	}
	stats, err := Extract(context.Background(), bytes.NewReader(sparseTar(1<<60)), target, ExtractOptions{})
	want := `1 entry not restored in ` + target + `: "huge" (its size of 1152921504606846976 bytes is more than the file system allows)`
	if err == nil || err.Error() != want {
		t.Errorf("err:\n got %v\nwant %s", err, want)
	}
	if got := listTree(t, target); !slices.Equal(got, []string{"after"}) {
		t.Errorf("tree: %q", got)
	}
	if stats.Files != 1 {
		t.Errorf("files = %d", stats.Files)
	}
}

// cancelAfter reads zeros forever and cancels after n bytes.
type cancelAfter struct {
	n, read int64
	cancel  context.CancelFunc
}

func (r *cancelAfter) Read(p []byte) (int, error) {
	clear(p)
	r.read += int64(len(p))
	if r.read >= r.n {
		r.cancel()
	}
	return len(p), nil
}

func TestCancelInsideAnEntry(t *testing.T) {
	// One regular entry declaring 1 TiB, fed zeros without end.
	hdr := paxBlock("big", '0', 1<<40)
	for name, f := range map[string]func(context.Context, io.Reader) error{
		"ScanTar": func(ctx context.Context, r io.Reader) error { _, err := ScanTar(ctx, r); return err },
		"Extract": func(ctx context.Context, r io.Reader) error {
			_, err := Extract(ctx, r, t.TempDir(), ExtractOptions{})
			return err
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		src := &cancelAfter{n: 8 << 20, cancel: cancel}
		err := f(ctx, io.MultiReader(bytes.NewReader(hdr), src))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context canceled", name, err)
		}
		if src.read > 8<<20+copyBufSize {
			t.Errorf("%s: read %d bytes after the cancellation at %d", name, src.read, 8<<20)
		}
		cancel()
	}
}

func TestLimitRaw(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100)
	got, err := io.ReadAll(LimitRaw(context.Background(), bytes.NewReader(data), 60))
	var re *RawSizeError
	if !errors.As(err, &re) || len(got) != 60 {
		t.Fatalf("read %d bytes, err %v; want 60 bytes and a *RawSizeError", len(got), err)
	}
	if want := "decodes to more than the manifest's raw size of 60 bytes (40 bytes more at least): the object is damaged"; err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	// The limit reached at a read's end: the next read finds the excess.
	r := LimitRaw(context.Background(), bytes.NewReader(data), 50)
	buf := make([]byte, 50)
	if n, err := r.Read(buf); n != 50 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	if n, err := r.Read(buf); n != 0 || !errors.As(err, &re) || re.Excess != 50 {
		t.Errorf("second read: %d, %v", n, err)
	}
	if got, err := io.ReadAll(LimitRaw(context.Background(), bytes.NewReader(data), 100)); err != nil || len(got) != 100 {
		t.Errorf("exact size: %d bytes, %v", len(got), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := io.ReadAll(LimitRaw(ctx, bytes.NewReader(data), 100)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestWriteNewReplacesWithoutWritingThrough(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("files of another user need root to create")
	}
	base := t.TempDir()
	// Let nobody reach base, for runuser.
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	dir := filepath.Join(base, "restore")
	outside := filepath.Join(base, "outside")
	os.Mkdir(dir, 0o1777)
	os.Mkdir(outside, 0o1777)
	os.Chmod(dir, 0o1777)
	os.Chmod(outside, 0o1777)
	// Made by another user: a dump file of mode 0666, and a file outside
	// the target that links in.
	run(t, "runuser", "-u", "nobody", "--", "sh", "-c",
		"umask 0; printf theirs > "+dir+"/app.dump; printf secret > "+outside+"/victim; printf target > "+outside+"/pointed")
	if err := os.Link(filepath.Join(outside, "victim"), filepath.Join(dir, "hard.dump")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "pointed"), filepath.Join(dir, "sym.dump")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, name := range []string{"app.dump", "hard.dump", "sym.dump", "new.dump"} {
		n, err := WriteNew(context.Background(), root, name, strings.NewReader("restored "+name), 0o600, 0, 0)
		if err != nil || n != int64(len("restored "+name)) {
			t.Errorf("WriteNew %s: %d, %v", name, n, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil || st.Mode != unix.S_IFREG|0o600 || st.Uid != 0 || st.Gid != 0 || st.Nlink != 1 {
			t.Errorf("%s: mode %o, owner %d:%d, %d links, %v; want a new file, 0600, root", name, st.Mode, st.Uid, st.Gid, st.Nlink, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != "restored "+name {
			t.Errorf("%s holds %q", name, b)
		}
	}
	for name, body := range map[string]string{"victim": "secret", "pointed": "target"} {
		if b, _ := os.ReadFile(filepath.Join(outside, name)); string(b) != body {
			t.Errorf("outside/%s changed: %q", name, b)
		}
	}
	// A directory in place, or the end of ctx: an error, nothing left.
	os.Mkdir(filepath.Join(dir, "busy.dump"), 0o755)
	if _, err := WriteNew(context.Background(), root, "busy.dump", strings.NewReader("x"), 0o600, 0, 0); err == nil {
		t.Error("WriteNew over a directory: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = WriteNew(ctx, root, "app.dump", &cancelAfter{n: 4 << 20, cancel: cancel}, 0o600, 0, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled WriteNew: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app.dump")); string(b) != "restored app.dump" {
		t.Errorf("app.dump after a cancelled write: %q", b)
	}
	if got := listTree(t, dir); !slices.Equal(got, []string{"app.dump", "busy.dump", "hard.dump", "new.dump", "sym.dump"}) {
		t.Errorf("left in the directory: %q", got)
	}
}

// xattrTree makes src/f with a user xattr and an ACL, src/d with a default
// ACL (and src/d/plain without any), and src/cap with a file capability,
// with the stock tools.
func xattrTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("f"), 0o640)
	os.WriteFile(filepath.Join(src, "cap"), []byte("#!/bin/sh\n"), 0o755)
	// Made before d got its default ACL: it has none.
	os.WriteFile(filepath.Join(src, "d", "plain"), []byte("p"), 0o644)
	if err := unix.Setxattr(filepath.Join(src, "f"), "user.probe", []byte("x"), 0); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the temporary directory's file system does not take user extended attributes: %v", err)
		}
		t.Skipf("the temporary directory's file system does not take user extended attributes: %v", err)
	}
	unix.Removexattr(filepath.Join(src, "f"), "user.probe")
	run(t, "setfattr", "-n", "user.comment", "-v", "hello", filepath.Join(src, "f"))
	run(t, "setfacl", "-m", "u:nobody:r", filepath.Join(src, "f"))
	run(t, "setfacl", "-d", "-m", "u:nobody:rx", filepath.Join(src, "d"))
	if os.Geteuid() == 0 {
		run(t, "setcap", "cap_net_raw+ep", filepath.Join(src, "cap"))
	}
	return src
}

// attrsOf is what a user sees of a tree's extended attributes: getfattr's
// blocks, one per file, sorted, and getcap's line.
func attrsOf(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(needTool(t, "getfattr"), "-R", "-d", "-m", "-", "-e", "hex", ".")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("getfattr in %s: %v", dir, err)
	}
	blocks := strings.Split(strings.TrimSpace(string(out)), "\n\n")
	slices.Sort(blocks)
	res := strings.Join(blocks, "\n\n") + "\n"
	if os.Geteuid() == 0 {
		res += strings.ReplaceAll(run(t, "getcap", filepath.Join(dir, "cap")), dir, "DIR")
	}
	return res
}

func TestXattrsRoundTrip(t *testing.T) {
	src := xattrTree(t)
	archive, stats := writeTarBuf(t, v1.FilesSource{Paths: []string{src}}, Options{})
	if len(stats.Warnings) != 0 {
		t.Errorf("warnings: %q", stats.Warnings)
	}
	rel := strings.TrimPrefix(src, "/")
	tr := tar.NewReader(bytes.NewReader(archive))
	recs := map[string]map[string]string{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		recs[strings.TrimPrefix(h.Name, rel+"/")] = h.PAXRecords
	}
	if got := recs["f"]["SCHILY.xattr.user.comment"]; got != "hello" {
		t.Errorf("f: SCHILY.xattr.user.comment = %q", got)
	}
	if got, want := recs["f"]["SCHILY.acl.access"], "user::rw-\nuser:nobody:r--\ngroup::r--\nmask::r--\nother::---\n"; got != want {
		t.Errorf("f: SCHILY.acl.access = %q, want %q", got, want)
	}
	if got, want := recs["d/"]["SCHILY.acl.default"], "user::rwx\nuser:nobody:r-x\ngroup::r-x\nmask::r-x\nother::r-x\n"; got != want {
		t.Errorf("d: SCHILY.acl.default = %q, want %q", got, want)
	}
	want := attrsOf(t, src)
	if !strings.Contains(want, "user.comment=0x68656c6c6f") || !strings.Contains(want, "system.posix_acl_access=") {
		t.Fatalf("the source lacks what the test set:\n%s", want)
	}

	// Aegis restores them.
	target := t.TempDir()
	xstats, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{})
	if err != nil || len(xstats.Warnings) != 0 {
		t.Fatalf("Extract: %v, warnings %q", err, xstats.Warnings)
	}
	if got := attrsOf(t, filepath.Join(target, rel)); got != want {
		t.Errorf("restored by Aegis:\n%s\nwant\n%s", got, want)
	}
	acl := run(t, "getfacl", "-c", filepath.Join(target, rel, "f"))
	if !strings.Contains(acl, "user:nobody:r--") {
		t.Errorf("getfacl of the restored f:\n%s", acl)
	}

	// So does GNU tar, reading what Aegis wrote.
	file := filepath.Join(t.TempDir(), "files.tar")
	os.WriteFile(file, archive, 0o600)
	gnu := t.TempDir()
	run(t, "tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", file, "-C", gnu)
	if got := attrsOf(t, filepath.Join(gnu, rel)); got != want {
		t.Errorf("restored by GNU tar:\n%s\nwant\n%s", got, want)
	}
}

func TestXattrsUnsupportedWarnOnce(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"a", "b", "c"} {
		h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.x": "1", "SCHILY.xattr.user.y": "2"}}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	calls := 0
	xattrSetter = func(string, int, string, []byte) error { calls++; return unix.EOPNOTSUPP }
	defer func() { xattrSetter = setxattr }()
	target := t.TempDir()
	stats, err := Extract(context.Background(), &buf, target, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`the file system of ` + target + ` does not support extended attributes: the extended attributes, ACLs and capabilities of 3 entries were not restored (first: "a")`}
	if !slices.Equal(stats.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", stats.Warnings, want)
	}
	if calls != 3 || stats.Files != 3 || len(stats.Skipped) != 0 {
		t.Errorf("%d calls, stats %+v", calls, stats)
	}
}

func TestExtractStopsAtRawSize(t *testing.T) {
	big := strings.Repeat("data", 1<<20) // 4 MiB
	archive := buildTar(t, []tarEntry{{name: "big", typ: tar.TypeReg, body: big}, {name: "after", typ: tar.TypeReg, body: "x"}})
	const limit = 1 << 20
	target := t.TempDir()
	stats, err := Extract(context.Background(), LimitRaw(context.Background(), bytes.NewReader(archive), limit), target, ExtractOptions{})
	var re *RawSizeError
	if !errors.As(err, &re) || re.Limit != limit {
		t.Fatalf("err = %v, want a *RawSizeError", err)
	}
	if want := "extract big: read tar: " + re.Error(); err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if stats.Bytes > limit {
		t.Errorf("wrote %d bytes past a raw size of %d", stats.Bytes, limit)
	}
	if _, err := os.Lstat(filepath.Join(target, "after")); err == nil {
		t.Error("entries after the limit were restored")
	}
}

func TestExtractACLsOfGNUTar(t *testing.T) {
	// GNU tar's --acls alone writes ACLs as SCHILY.acl.* text only.
	src := xattrTree(t)
	file := filepath.Join(t.TempDir(), "gnu.tar")
	run(t, "tar", "--acls", "--format=posix", "-cf", file, "-C", src, "f", "d")
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	target := t.TempDir()
	if _, err := Extract(context.Background(), f, target, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "d"} {
		got := run(t, "getfacl", "-c", filepath.Join(target, name))
		want := run(t, "getfacl", "-c", filepath.Join(src, name))
		if got != want || !strings.Contains(got, "user:nobody:") {
			t.Errorf("%s: getfacl of the restored copy:\n%s\nof the original:\n%s", name, got, want)
		}
	}
	if got := run(t, "getfacl", "-c", filepath.Join(target, "d", "plain")); strings.Contains(got, "nobody") {
		t.Errorf("d/plain inherited an ACL:\n%s", got)
	}
}
