package files

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type tarEntry struct {
	name, linkname string
	typ            byte
	body           string
}

func buildTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.linkname, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listTree returns the paths below dir, relative to it.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExtractRefusesEscapes(t *testing.T) {
	// base/target is where we extract; base/outside is what an attacker
	// aims at, beside and above it.
	base := t.TempDir()
	target := filepath.Join(base, "deep", "target")
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := filepath.Join(base, "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := buildTar(t, []tarEntry{
		{name: "../evil", typ: tar.TypeReg, body: "evil"},
		{name: "/abs", typ: tar.TypeReg, body: "abs"},
		{name: "a/../../evil", typ: tar.TypeReg, body: "evil"},
		{name: "ok.txt", typ: tar.TypeReg, body: "fine"},
		{name: "link", typ: tar.TypeSymlink, linkname: outside},
		{name: "link/pwned", typ: tar.TypeReg, body: "pwned"},
		{name: "link/sub/", typ: tar.TypeDir},
		{name: "hl", typ: tar.TypeLink, linkname: "../../passwd"},
		{name: "hl2", typ: tar.TypeLink, linkname: "link/x"},
		// A symlink inside the target is not written through either.
		{name: "dir/", typ: tar.TypeDir},
		{name: "inner", typ: tar.TypeSymlink, linkname: "dir"},
		{name: "inner/file", typ: tar.TypeReg, body: "through"},
		{name: "dir/real", typ: tar.TypeReg, body: "real"},
		{name: "hl3", typ: tar.TypeLink, linkname: "dir/real"},
	})
	stats, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{})
	if err == nil {
		t.Fatal("Extract: no error")
	}
	want := `refused 8 entries that would land outside ` + target + `: "../evil", "/abs", "a/../../evil", "link/pwned", "link/sub/", ` +
		`"hl" (hard link to "../../passwd"), "hl2" (hard link to "link/x"), "inner/file"`
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if got := listTree(t, outside); len(got) != 0 {
		t.Errorf("written outside the target: %q", got)
	}
	if got := listTree(t, base); !slices.Equal(got, []string{"deep", "deep/target", "deep/target/dir", "deep/target/dir/real", "deep/target/hl3", "deep/target/inner", "deep/target/link", "deep/target/ok.txt", "outside", "passwd"}) {
		t.Errorf("tree after extract: %q", got)
	}
	if b, _ := os.ReadFile(passwd); string(b) != "root:x:0:0" {
		t.Errorf("passwd changed: %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(target, "ok.txt")); err != nil || string(b) != "fine" {
		t.Errorf("ok.txt: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(target, "link")); err != nil || l != outside {
		t.Errorf("link: %q, %v", l, err)
	}
	if stats.Files != 2 || stats.Links != 3 || stats.Dirs != 1 {
		t.Errorf("stats = %+v", stats)
	}
}

func TestExtractDoesNotWriteThroughExistingLinks(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "target")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{target, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Already in the target: a symlink and a hard link to files outside it.
	if err := os.Symlink(victim, filepath.Join(target, "file")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, filepath.Join(target, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(target, "dir")); err != nil {
		t.Fatal(err)
	}
	archive := buildTar(t, []tarEntry{
		{name: "file", typ: tar.TypeReg, body: "new"},
		{name: "hard", typ: tar.TypeReg, body: "new"},
		{name: "dir/x", typ: tar.TypeReg, body: "new"},
	})
	_, err := Extract(context.Background(), bytes.NewReader(archive), target, ExtractOptions{})
	if err == nil || !strings.Contains(err.Error(), `refused 1 entry that would land outside `+target+`: "dir/x"`) {
		t.Errorf("err = %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "original" {
		t.Errorf("victim changed: %q", b)
	}
	for _, f := range []string{"file", "hard"} {
		fi, err := os.Lstat(filepath.Join(target, f))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v, %v; want a new regular file", f, fi, err)
		}
		if b, _ := os.ReadFile(filepath.Join(target, f)); string(b) != "new" {
			t.Errorf("%s: %q", f, b)
		}
	}
	if _, err := os.Lstat(filepath.Join(outside, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("outside/x: %v", err)
	}
}

func TestExtractReadOnlyDirAndImplicitParents(t *testing.T) {
	archive := buildTar(t, []tarEntry{
		{name: "ro/", typ: tar.TypeDir},
		{name: "implicit/parent/file", typ: tar.TypeReg, body: "x"},
		{name: "./dot/file", typ: tar.TypeReg, body: "y"},
	})
	// Make ro read-only in the archive: rewrite its mode.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "ro/", Typeflag: tar.TypeDir, Mode: 0o555}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "ro/inside", Typeflag: tar.TypeReg, Mode: 0o444, Size: 2}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("hi"))
	tw.Close()
	target := t.TempDir()
	for _, a := range [][]byte{archive, buf.Bytes()} {
		if _, err := Extract(context.Background(), bytes.NewReader(a), target, ExtractOptions{}); err != nil {
			t.Fatalf("Extract: %v", err)
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(target, "ro"), 0o755) })
	for _, f := range []string{"implicit/parent/file", "dot/file", "ro/inside"} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(target, "ro")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("ro: %v, %v", fi, err)
	}
}

func TestExtractCancelled(t *testing.T) {
	archive := buildTar(t, []tarEntry{{name: "a", typ: tar.TypeReg, body: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Extract(ctx, bytes.NewReader(archive), t.TempDir(), ExtractOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}
