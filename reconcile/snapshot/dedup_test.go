package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/test/testenv"
)

// dedupFixture is a policy backing up one files source to a local
// destination and, when the S3 test server runs, an S3 one.
type dedupFixture struct {
	src    string
	state  string
	policy *v1.BackupPolicy
	dests  map[string]*v1.Destination
	keys   *KeyRing
}

func newDedupFixture(t *testing.T, mode string, withS3 bool) *dedupFixture {
	t.Helper()
	dir := t.TempDir()
	f := &dedupFixture{src: filepath.Join(dir, "src"), state: filepath.Join(dir, "state")}
	os.MkdirAll(filepath.Join(f.src, "sub"), 0o755)
	big := make([]byte, 5<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(f.src, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(f.src, "sub", "small.txt"), []byte("hello dedup\n"), 0o644)
	f.dests = map[string]*v1.Destination{"disk": {Metadata: v1.ObjectMeta{Name: "disk"},
		Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, "disk")}}}}
	names := []string{"disk"}
	if withS3 {
		env := testenv.Require(t, "S3 server", "AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET", "AEGIS_TEST_S3_CREDENTIALS_FILE")
		f.dests["s3"] = &v1.Destination{Metadata: v1.ObjectMeta{Name: "s3"}, Spec: v1.DestinationSpec{S3: &v1.S3Destination{
			Provider: "other", Endpoint: env["AEGIS_TEST_S3_ENDPOINT"], Bucket: env["AEGIS_TEST_S3_BUCKET"],
			CredentialsFile: env["AEGIS_TEST_S3_CREDENTIALS_FILE"], Prefix: fmt.Sprintf("test/dedup-%d", time.Now().UnixNano()),
		}}}
		names = append(names, "s3")
	}
	f.keys = &KeyRing{}
	var enc v1.Encryption
	switch mode {
	case "age":
		id, _ := age.GenerateX25519Identity()
		enc.Age = &v1.AgeEncryption{Recipients: []string{id.Recipient().String()}}
		f.keys.identities = append(f.keys.identities, id)
	case "openssl":
		kf := writeKeyFile(t, "correct horse battery staple")
		enc.OpenSSL = &v1.OpenSSLEncryption{KeyFile: kf, Iterations: 10000}
		kr, err := LoadKeyRing([]string{kf}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		f.keys = kr
	default:
		enc.None = true
		f.keys.AcceptMode("none", false)
	}
	f.policy = &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}, Spec: v1.BackupPolicySpec{
		Schedule: "@daily", Storage: v1.StorageDeduplicated,
		Sources:      []v1.Source{{Name: "site", Files: &v1.FilesSource{Paths: []string{f.src}}}},
		Destinations: names, Encryption: &enc,
	}}
	return f
}

func (f *dedupFixture) backup(t *testing.T, storage string) *v1.RunResult {
	t.Helper()
	f.policy.Spec.Storage = storage
	r := &Runner{Host: "h", Now: time.Now, StateDir: f.state}
	res := r.Backup(context.Background(), slog.New(slog.DiscardHandler), BackupRequest{Policy: f.policy, Destinations: f.dests})
	if res.Result != v1.ResultSucceeded {
		t.Fatalf("backup: %+v", res)
	}
	return res
}

func (f *dedupFixture) open(t *testing.T, name string) drivers.Destination {
	t.Helper()
	d, err := registry.Destination(f.dests[name], registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// rawSum returns the SHA-256 of an object's raw stream, read back through
// the restore path.
func rawSum(t *testing.T, d drivers.Destination, s Snapshot, keys *KeyRing) string {
	t.Helper()
	dec := &decoder{keys: keys}
	raw, check, closeFn, err := openObject(context.Background(), d, s.Manifest, s.Manifest.Objects[0], dec)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	h := sha256.New()
	if _, err := io.Copy(h, raw); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestDedupRoundTrip: a deduplicated snapshot is a format-2 manifest of
// chunk lists; a second run stores almost nothing new; restore gives the files
// back on every destination; archive and deduplicated snapshots of the
// policy are listed together.
func TestDedupRoundTrip(t *testing.T) {
	for _, mode := range []string{"age", "openssl", "none"} {
		t.Run(mode, func(t *testing.T) { testDedupRoundTrip(t, mode, mode == "age") })
	}
}

func testDedupRoundTrip(t *testing.T, mode string, withS3 bool) {
	f := newDedupFixture(t, mode, withS3)
	first := f.backup(t, v1.StorageDeduplicated)
	if s := first.Sources[0]; s.Storage != v1.StorageDeduplicated || s.NewBytes < 5<<20 || s.StreamBytes < s.NewBytes {
		t.Errorf("first run: storage %q, stream %d, new %d", s.Storage, s.StreamBytes, s.NewBytes)
	}
	second := f.backup(t, v1.StorageDeduplicated)
	t.Logf("unchanged tree: %d stream bytes, %d new, ratio %v", second.Sources[0].StreamBytes, second.Sources[0].NewBytes, second.Sources[0].DedupRatio)
	if s := second.Sources[0]; s.NewBytes > 64<<10 || (s.NewBytes > 0 && s.DedupRatio < 50) {
		t.Errorf("second run of an unchanged tree stored %d new bytes of %d (ratio %v)", s.NewBytes, s.StreamBytes, s.DedupRatio)
	}
	third := f.backup(t, v1.StorageArchive)
	for name := range f.dests {
		d := f.open(t, name)
		snaps, err := ListSnapshots(context.Background(), d, name, "web")
		if err != nil || len(snaps) != 3 {
			t.Fatalf("%s: %d snapshots, %v", name, len(snaps), err)
		}
		sums := map[string]string{}
		for _, s := range snaps {
			m := s.Manifest
			wantV, wantS := v1.SnapshotFormatVersion, v1.StorageDeduplicated
			if len(m.Objects[0].Chunks) == 0 {
				wantV, wantS = v1.ArchiveFormatVersion, ""
			}
			if m.FormatVersion != wantV || m.Storage != wantS {
				t.Errorf("%s: snapshot %s: format %d storage %q, want %d %q", name, m.ID, m.FormatVersion, m.Storage, wantV, wantS)
			}
			sums[m.ID] = rawSum(t, d, s, f.keys)
		}
		if sums[second.SnapshotID] == "" || sums[third.SnapshotID] == "" {
			t.Errorf("%s: snapshots %v, want %s and %s", name, sums, second.SnapshotID, third.SnapshotID)
		}
		target := t.TempDir()
		if _, err := Restore(context.Background(), d, snaps[1], RestoreOptions{Target: target, Keys: f.keys}); err != nil {
			t.Fatalf("%s: restore: %v", name, err)
		}
		compareTrees(t, f.src, filepath.Join(target, "site", strings.TrimPrefix(f.src, "/")))
		if v := Verify(context.Background(), d, snaps[0], f.keys); v.Err != nil {
			t.Errorf("%s: verify: %v", name, v.Err)
		}
	}
}

func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	for _, rel := range []string{"big.bin", "sub/small.txt"} {
		a, _ := os.ReadFile(filepath.Join(want, rel))
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: restored %d bytes (%v), want %d equal bytes", rel, len(b), err, len(a))
		}
	}
}

// streamSource writes fixed objects, cutting chunks where told.
type streamSource struct {
	objects map[string][]byte
	cuts    []int
}

func (s streamSource) Backup(ctx context.Context, out drivers.ObjectWriter) (drivers.SourceStats, error) {
	for _, name := range []string{"a.dump", "b.dump", "empty.dump"} {
		w, err := out.Create(ctx, name, "raw")
		if err != nil {
			return drivers.SourceStats{}, err
		}
		data, at := s.objects[name], 0
		for _, c := range s.cuts {
			if c > len(data) {
				break
			}
			w.Write(data[at:c])
			at = c
			if err := w.(drivers.Boundary).Boundary(); err != nil {
				return drivers.SourceStats{}, err
			}
		}
		w.Write(data[at:])
		if err := w.Close(); err != nil {
			return drivers.SourceStats{}, err
		}
	}
	return drivers.SourceStats{}, nil
}

// TestDedupStreamIsSourceStream: the concatenation of an object's chunks is
// byte for byte the stream the source wrote (what the archive format
// stores), Boundary calls included, for empty objects too.
func TestDedupStreamIsSourceStream(t *testing.T) {
	for _, mode := range []string{"age", "openssl", "none"} {
		t.Run(mode, func(t *testing.T) {
			f := newDedupFixture(t, mode, false)
			c, err := newCodec(f.policy)
			if err != nil {
				t.Fatal(err)
			}
			d := f.open(t, "disk")
			a := make([]byte, 7<<20+13)
			rand.Read(a)
			src := streamSource{objects: map[string][]byte{"a.dump": a, "b.dump": append(bytes.Repeat([]byte("x"), 3<<20), a[:1<<20]...)},
				cuts: []int{1, 2, 4096, 1 << 20, 3<<20 + 7}}
			r := &Runner{Host: "h", Now: time.Now, StateDir: f.state}
			sw := newSnapshotWriter(c, v1.SnapshotManifest{Host: "h", Policy: "web", Source: "s", ID: v1.NewSnapshotID(time.Now()), Time: time.Now().UTC()},
				[]*target{{name: "disk", dest: d}})
			same := func(w drivers.ObjectWriter) drivers.ObjectWriter { return w }
			if _, _, err := r.dedupBackup(context.Background(), slog.New(slog.DiscardHandler), c, sw, src, same); err != nil {
				t.Fatal(err)
			}
			sw.commit(context.Background())
			m, err := ReadManifest(context.Background(), d, sw.manifest.ManifestKey())
			if err != nil {
				t.Fatal(err)
			}
			dec := &decoder{keys: f.keys}
			for _, ob := range m.Objects {
				raw, check, closeFn, err := openObject(context.Background(), d, m, ob, dec)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(raw)
				if err == nil {
					err = check()
				}
				closeFn()
				if err != nil || !bytes.Equal(got, src.objects[ob.Name]) {
					t.Errorf("%s: read %d bytes (%v), want the %d bytes written", ob.Name, len(got), err, len(src.objects[ob.Name]))
				}
			}
			// Dumps restore as files (files.WriteNew), volumes through the
			// Unpack hook: both get the stream written.
			target := t.TempDir()
			if _, err := Restore(context.Background(), d, Snapshot{Manifest: m}, RestoreOptions{Target: target, Keys: f.keys}); err != nil {
				t.Fatal(err)
			}
			unpacked := map[string][]byte{}
			unpack := func(_ context.Context, ob v1.SnapshotObject, r io.Reader) (files.ExtractStats, error) {
				b, err := io.ReadAll(r)
				unpacked[ob.Name] = b
				return files.ExtractStats{}, err
			}
			if _, err := Restore(context.Background(), d, Snapshot{Manifest: m}, RestoreOptions{Keys: f.keys, Unpack: unpack}); err != nil {
				t.Fatal(err)
			}
			for name, want := range src.objects {
				got, err := os.ReadFile(filepath.Join(target, "s", name))
				if err != nil || !bytes.Equal(got, want) || !bytes.Equal(unpacked[name], want) {
					t.Errorf("%s: restored %d bytes (%v), unpacked %d, want %d", name, len(got), err, len(unpacked[name]), len(want))
				}
			}
			if len(m.Objects) != 3 || m.FormatVersion != 2 || m.Storage != v1.StorageDeduplicated || !strings.HasPrefix(m.DedupKeyID, "dk-") {
				t.Errorf("manifest: %d objects, format %d, storage %q, key %q", len(m.Objects), m.FormatVersion, m.Storage, m.DedupKeyID)
			}
		})
	}
}

// TestDedupTamperingIsCaught: a flipped byte in a pack, a truncated pack, an edited index or an edited manifest stops restore and verify
// with an error naming what is wrong.
func TestDedupTamperingIsCaught(t *testing.T) {
	f := newDedupFixture(t, "age", false)
	f.backup(t, v1.StorageDeduplicated)
	root := f.dests["disk"].Spec.Local.Path
	repo := filepath.Join(root, "h", "web", "_dedup")
	packs, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.tar"))
	indexes, _ := filepath.Glob(filepath.Join(repo, "index", "*.json"))
	manifests, _ := filepath.Glob(filepath.Join(root, "h", "web", "site", "*", v1.ManifestName))
	if len(packs) != 1 || len(indexes) != 1 || len(manifests) != 1 {
		t.Fatalf("packs %v, indexes %v, manifests %v", packs, indexes, manifests)
	}
	packID := strings.TrimSuffix(filepath.Base(packs[0]), ".tar")
	cases := []struct {
		name   string
		tamper func(t *testing.T)
		want   string
	}{
		{"flipped byte in a pack", func(t *testing.T) { flipByte(t, packs[0], 2<<20) }, packID},
		{"pack truncated", func(t *testing.T) { os.Truncate(packs[0], 1<<20) }, packID},
		{"edited index", func(t *testing.T) { replaceIn(t, indexes[0], `"length":`, `"length":1`) }, "damaged index files were skipped"},
		{"edited manifest", func(t *testing.T) { replaceIn(t, manifests[0], `"size": `, `"size": 1`) }, "edited"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saved := saveFiles(t, append(append(packs, indexes...), manifests...))
			defer saved()
			c.tamper(t)
			d := f.open(t, "disk")
			snaps, err := ListSnapshots(context.Background(), d, "disk", "web")
			if err != nil {
				t.Fatal(err)
			}
			_, rerr := Restore(context.Background(), d, snaps[0], RestoreOptions{Target: t.TempDir(), Keys: f.keys})
			verr := Verify(context.Background(), d, snaps[0], f.keys).Err
			for what, err := range map[string]error{"restore": rerr, "verify": verr} {
				t.Logf("%s: %v", what, err)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: %v, want an error naming %q", what, err, c.want)
				}
			}
		})
	}
}

func flipByte(t *testing.T, name string, at int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil || int64(len(b)) <= at {
		t.Fatalf("%s: %d bytes, %v", name, len(b), err)
	}
	b[at] ^= 0x40
	os.WriteFile(name, b, 0o600)
}

func replaceIn(t *testing.T, name, old, new string) {
	t.Helper()
	b, _ := os.ReadFile(name)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s holds no %q", name, old)
	}
	os.WriteFile(name, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600)
}

// saveFiles returns a function that puts the files back as they were.
func saveFiles(t *testing.T, names []string) func() {
	saved := map[string][]byte{}
	for _, n := range names {
		saved[n], _ = os.ReadFile(n)
	}
	return func() {
		for n, b := range saved {
			os.WriteFile(n, b, 0o600)
		}
	}
}

// TestDedupVerifyDepth: verify of a deduplicated snapshot checks chunks'
// packs and sizes by default, misses nothing it claims to check, and
// --read-data-subset 100% finds a flipped byte the default does not read.
func TestDedupVerifyDepth(t *testing.T) {
	f := newDedupFixture(t, "openssl", false)
	f.backup(t, v1.StorageDeduplicated)
	d := f.open(t, "disk")
	snaps, err := ListSnapshots(context.Background(), d, "disk", "web")
	if err != nil {
		t.Fatal(err)
	}
	verify := func(o VerifyOptions) error {
		return VerifyWithProgress(context.Background(), d, snaps[0], f.keys, nil, o).Err
	}
	if err := verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify of a sound snapshot: %v", err)
	}
	packs, _ := filepath.Glob(filepath.Join(f.dests["disk"].Spec.Local.Path, "h", "web", "_dedup", "packs", "*", "*.tar"))
	packID := strings.TrimSuffix(filepath.Base(packs[0]), ".tar")
	flipByte(t, packs[0], 2<<20)
	if err := verify(VerifyOptions{}); err != nil {
		t.Errorf("default verify read the data: %v", err)
	}
	for _, o := range []VerifyOptions{{Subset: 1}, {ReadData: true}} {
		if err := verify(o); err == nil || !strings.Contains(err.Error(), packID) {
			t.Errorf("verify %+v: %v, want an error naming pack %s", o, err, packID)
		}
	}
	os.Truncate(packs[0], 1<<20)
	if err := verify(VerifyOptions{}); err == nil || !strings.Contains(err.Error(), packID) {
		t.Errorf("verify of a truncated pack: %v, want an error naming pack %s", err, packID)
	}
}

func TestParseSubset(t *testing.T) {
	for in, want := range map[string]float64{"10%": 0.1, "0.25": 0.25, "100%": 1} {
		if got, err := ParseSubset(in); err != nil || got != want {
			t.Errorf("ParseSubset(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "150%", "ten", "-5%"} {
		if _, err := ParseSubset(in); err == nil {
			t.Errorf("ParseSubset(%q) accepted", in)
		}
	}
}
