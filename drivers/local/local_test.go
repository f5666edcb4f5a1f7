package local_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/drivertest"
	"github.com/aegis-backup/aegis/drivers/local"
)

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	roots := map[drivers.Destination]string{}
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		dir := t.TempDir()
		s := local.New(dir)
		mu.Lock()
		defer mu.Unlock()
		roots[s] = dir
		return s
	}, drivertest.WithSweep(func(d drivers.Destination) string {
		mu.Lock()
		defer mu.Unlock()
		return roots[d]
	}))
}

// TestConformanceMissingRoot runs the suite on a root that does not exist
// yet: the store creates it on first write and lists nothing before.
func TestConformanceMissingRoot(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		return local.New(filepath.Join(t.TempDir(), "not", "yet"))
	})
}

func put(t *testing.T, s *local.Store, key, data string) {
	t.Helper()
	if _, err := s.Put(t.Context(), key, strings.NewReader(data)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func listKeys(t *testing.T, s *local.Store, prefix string) []string {
	t.Helper()
	infos, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	keys := []string{}
	for _, fi := range infos {
		keys = append(keys, fi.Key)
	}
	return keys
}

// tree returns every file and directory below root, relative and
// slash-separated, directories with a trailing slash.
func tree(t *testing.T, root string) []string {
	t.Helper()
	out := []string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

func checkTree(t *testing.T, root string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := tree(t, root); !slices.Equal(got, want) {
		t.Errorf("files below %s:\n got %q\nwant %q", root, got, want)
	}
}

func TestModes(t *testing.T) {
	root := t.TempDir()
	s := local.New(root)
	put(t, s, "a/b/obj", "secret")
	put(t, s, "a/b/obj", "replaced") // a replacement gets the same mode
	put(t, s, "top", "x")
	for _, c := range []struct {
		rel  string
		want fs.FileMode
	}{
		{"a/b/obj", 0o600},
		{"top", 0o600},
		{"a", fs.ModeDir | 0o700},
		{"a/b", fs.ModeDir | 0o700},
	} {
		fi, err := os.Stat(filepath.Join(root, c.rel))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != c.want {
			t.Errorf("mode of %s = %v, want %v", c.rel, got, c.want)
		}
	}
}

// TestRootNotADirectory: a root that cannot be created, below a regular
// file or one itself, fails Put, Check and List with the cause, and creates
// nothing.
func TestRootNotADirectory(t *testing.T) {
	for _, c := range []struct {
		name, rel string
	}{
		{"BelowFile", "file/root"},
		{"File", "file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			s := local.New(filepath.Join(dir, filepath.FromSlash(c.rel)))

			const want = "not a directory"
			if _, err := s.Put(t.Context(), "a/b", strings.NewReader("data")); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Put: got error %v, want one mentioning %q", err, want)
			}
			if _, err := s.Put(t.Context(), "top", strings.NewReader("data")); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Put: got error %v, want one mentioning %q", err, want)
			}
			if err := s.Check(t.Context()); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Check: got error %v, want one mentioning %q", err, want)
			}
			// A misplaced root is not an empty one.
			for _, prefix := range []string{"", "a", "a/", "a/b/"} {
				if infos, err := s.List(t.Context(), prefix); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("List(%q) = %v, %v; want an error mentioning %q", prefix, infos, err, want)
				}
			}
			checkTree(t, dir, "file")
		})
	}
}

// TestTempFilesNeverListed: files a Put is writing, or that a crash left
// behind, are not objects.
func TestTempFilesNeverListed(t *testing.T) {
	root := t.TempDir()
	s := local.New(root)
	put(t, s, "a/obj", "x")
	for _, rel := range []string{".aegis-tmp-obj-123", "a/.aegis-tmp-obj-456", "b/.aegis-tmp-x-1"} {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/obj"}},
		{".aegis", []string{}},
		{"a/", []string{"a/obj"}},
		{"a/.aegis-tmp-", []string{}},
		{"b/", []string{}},
	} {
		if got := listKeys(t, s, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	// A key cannot name a temporary file: it would be stored but never
	// listed, and could collide with a Put's temporary file.
	for _, key := range []string{".aegis-tmp-obj-123", "a/.aegis-tmp-obj-456", ".aegis-tmp-x/y"} {
		if _, err := s.Put(t.Context(), key, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) = <nil>; want an error", key)
		}
		if _, err := s.Stat(t.Context(), key); err == nil {
			t.Errorf("Stat(%q) = <nil> error; want an error", key)
		}
		if err := s.Delete(t.Context(), key); err == nil {
			t.Errorf("Delete(%q) = <nil>; want an error", key)
		}
	}
}

// gate blocks a Put's reader after its first bytes until released.
type gate struct {
	head    io.Reader
	reached chan struct{}
	release chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	if n, err := g.head.Read(p); err != io.EOF {
		return n, err
	}
	close(g.reached)
	<-g.release
	return 0, io.EOF
}

// TestPutInProgressWritesTempFile: while a Put runs its data sits in a
// temporary file beside the key, which List does not show; afterwards only
// the object remains.
func TestPutInProgressWritesTempFile(t *testing.T) {
	root := t.TempDir()
	s := local.New(root)
	g := &gate{head: strings.NewReader("head"), reached: make(chan struct{}), release: make(chan struct{})}
	var err error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, err = s.Put(t.Context(), "a/obj", g)
	}()
	select {
	case <-g.reached:
	case <-finished:
		t.Fatalf("Put returned %v before its reader was drained", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(root, "a", ".aegis-tmp-obj-*"))
	if len(tmps) != 1 {
		t.Errorf("temporary files during Put: got %q, want one", tmps)
	}
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Errorf("List during Put = %q, want nothing", got)
	}
	close(g.release)
	<-finished
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkTree(t, root, "a/", "a/obj")
}

// TestFailedPutLeavesNoTempFile: a failed Put cleans up after itself.
func TestFailedPutLeavesNoTempFile(t *testing.T) {
	root := t.TempDir()
	s := local.New(root)
	put(t, s, "a/keep", "keep")
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("partial"), errReader{boom})
	if _, err := s.Put(t.Context(), "a/obj", r); !errors.Is(err, boom) {
		t.Errorf("Put: got error %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "a/obj", strings.NewReader("data")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled ctx: got error %v, want %v", err, context.Canceled)
	}
	checkTree(t, root, "a/", "a/keep")
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	s := local.New(root)
	put(t, s, "a/b/c/d", "d")
	put(t, s, "a/x", "x")
	put(t, s, "top", "top")

	steps := []struct {
		del  string
		want []string
	}{
		{"a/b/c/d", []string{"a/", "a/x", "top"}},
		{"a/x", []string{"top"}},
		{"top", []string{}},
		{"top", []string{}}, // missing: no error, nothing else removed
	}
	for _, step := range steps {
		if err := s.Delete(t.Context(), step.del); err != nil {
			t.Fatalf("Delete(%q): %v", step.del, err)
		}
		checkTree(t, root, step.want...)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("root after deleting everything: %v, %v; want the directory kept", fi, err)
	}
}

// TestDeleteRelativeRoot: a root given as "." is tidied like any other and
// kept like any other.
func TestDeleteRelativeRoot(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := local.New(".")
	put(t, s, "a/b/c", "c")
	if err := s.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkTree(t, dir)
}

// TestKeysStayInsideRoot: invalid keys and prefixes never reach files
// beside the root.
func TestKeysStayInsideRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	s := local.New(root)
	put(t, s, "x", "inside")

	for _, key := range []string{"../x", "../y", "a/../../x", "../root/x"} {
		if _, err := s.Put(t.Context(), key, strings.NewReader("bad")); err == nil {
			t.Errorf("Put(%q) = <nil>; want an error", key)
		}
		if err := s.Delete(t.Context(), key); err == nil {
			t.Errorf("Delete(%q) = <nil>; want an error", key)
		}
	}
	for _, prefix := range []string{"../", "..", "../x", "a/../../", "../root/"} {
		if got := listKeys(t, s, prefix); len(got) != 0 {
			t.Errorf("List(%q) = %q, want nothing", prefix, got)
		}
	}
	checkTree(t, dir, "root/", "root/x", "x")
	if b, _ := os.ReadFile(filepath.Join(dir, "x")); string(b) != "outside" {
		t.Errorf("file beside the root = %q, want %q", b, "outside")
	}
}

func TestCleanTempRemovesOnlyOldTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	s := local.New(root)
	if _, err := s.Put(context.Background(), "h/p/s/id/files.tar", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "h", "p", "s", "id")
	old := filepath.Join(dir, ".aegis-tmp-files.tar-123")
	fresh := filepath.Join(dir, ".aegis-tmp-files.tar-456")
	os.WriteFile(old, []byte("leftover"), 0o600)
	os.WriteFile(fresh, []byte("in progress"), 0o600)
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(old, past, past)

	n, size, err := s.CleanTemp(context.Background(), time.Now().Add(-24*time.Hour))
	if err != nil || n != 1 || size != int64(len("leftover")) {
		t.Fatalf("CleanTemp = %d, %d, %v; want 1, 8, nil", n, size, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old temporary file still there: %v", err)
	}
	for _, p := range []string{fresh, filepath.Join(dir, "files.tar")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
