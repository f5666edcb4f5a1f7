package dedup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/klauspost/compress/zstd"
)

// ageZstd seals chunks as `zstd | age` does, so that `age -d | zstd -d`
// opens them.
type ageZstd struct {
	recipient *age.X25519Recipient
	identity  *age.X25519Identity
	enc       *zstd.Encoder
}

func newAgeZstd(t *testing.T) ageZstd {
	t.Helper()
	c, err := newAgeZstdB()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newAgeZstdB() (ageZstd, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return ageZstd{}, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return ageZstd{}, err
	}
	return ageZstd{recipient: id.Recipient(), identity: id, enc: enc}, nil
}

// sealWriter collects a chunk, then compresses it with the shared encoder
// in one call: creating a zstd stream per chunk costs far more than the
// chunk itself.
type sealWriter struct {
	enc *zstd.Encoder
	age io.WriteCloser
	buf []byte
}

func (s *sealWriter) Write(p []byte) (int, error) { s.buf = append(s.buf, p...); return len(p), nil }
func (s *sealWriter) Close() error {
	if _, err := s.age.Write(s.enc.EncodeAll(s.buf, nil)); err != nil {
		return err
	}
	return s.age.Close()
}

func (c ageZstd) Seal(w io.Writer) (io.WriteCloser, error) {
	aw, err := age.Encrypt(w, c.recipient)
	if err != nil {
		return nil, err
	}
	return &sealWriter{enc: c.enc, age: aw}, nil
}

func (c ageZstd) Open(r io.Reader) (io.ReadCloser, error) {
	ar, err := age.Decrypt(r, c.identity)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(ar, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return dec.IOReadCloser(), nil
}

var _ Sealer = ageZstd{}
var _ Opener = ageZstd{}

const testRepo = "host/policy/_dedup/"

func testKey(t *testing.T) Key {
	t.Helper()
	k, err := NewKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// randomBytes returns n incompressible bytes from seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var fixedNow = func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }

type env struct {
	t     *testing.T
	root  string
	dest  *local.Store
	codec ageZstd
	key   Key
}

func newEnv(t *testing.T) *env {
	root := t.TempDir()
	return &env{t: t, root: root, dest: local.New(root), codec: newAgeZstd(t), key: testKey(t)}
}

func (e *env) index() *Index {
	e.t.Helper()
	x, _, err := LoadIndex(context.Background(), e.dest, testRepo)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// backup writes objects (name → data, with cuts where the data holds "|")
// and commits; it returns the chunk lists and the stats.
func (e *env) backup(objects map[string][]byte, packSize int) (map[string][]ChunkRef, Stats) {
	e.t.Helper()
	ctx := context.Background()
	w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, PackSize: packSize, Now: fixedNow},
		[]Target{{Name: "local", Dest: e.dest, Known: e.index()}})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]ChunkRef{}
	for name, data := range objects {
		o, err := w.Object(name)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := o.Write(data); err != nil {
			e.t.Fatal(err)
		}
		if err := o.Close(); err != nil {
			e.t.Fatal(err)
		}
		out[name] = o.Chunks()
	}
	st, err := w.Commit(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return out, st
}

func (e *env) restore(chunks []ChunkRef) ([]byte, error) {
	var buf bytes.Buffer
	r := &Reader{Dest: e.dest, Repo: testRepo, Index: e.index(), Key: e.key, Opener: e.codec, Parallel: 3, MaxRange: 3 << 20}
	err := r.Restore(context.Background(), chunks, &buf)
	return buf.Bytes(), err
}

func TestRoundTripAndDedup(t *testing.T) {
	e := newEnv(t)
	big := randomBytes(1, 20<<20)
	first, st := e.backup(map[string][]byte{"big.bin": big, "empty": nil}, 4<<20)
	if st.RawBytes != int64(len(big)) || st.NewRawBytes != int64(len(big)) {
		t.Fatalf("first run stats %+v, want %d raw and new bytes", st, len(big))
	}
	if len(first["empty"]) != 0 {
		t.Fatalf("empty object has chunks %v", first["empty"])
	}
	got, err := e.restore(first["big.bin"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("restored %d bytes differ from the %d written", len(got), len(big))
	}
	for _, c := range first["big.bin"] {
		if c.Size < MinChunk || c.Size > MaxChunk {
			// Only the last chunk may be short.
			if c != first["big.bin"][len(first["big.bin"])-1] {
				t.Errorf("chunk %s of %d bytes outside [%d, %d]", c.ID, c.Size, MinChunk, MaxChunk)
			}
		}
	}

	// Same data again, with 1 MiB inserted in the middle: only the chunks
	// around the insertion are new.
	edited := append(append(append([]byte{}, big[:10<<20]...), randomBytes(2, 1<<20)...), big[10<<20:]...)
	second, st := e.backup(map[string][]byte{"big.bin": edited}, 4<<20)
	if st.NewRawBytes > 4<<20+1<<20 {
		t.Errorf("after inserting 1 MiB, %d new bytes were stored, want at most %d", st.NewRawBytes, 5<<20)
	}
	got, err = e.restore(second["big.bin"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, edited) {
		t.Fatal("restored edited object differs")
	}
	_, st = e.backup(map[string][]byte{"again": big}, 4<<20)
	if st.NewChunks != 0 || st.Packs != 0 {
		t.Errorf("unchanged re-run stored %d chunks in %d packs, want none", st.NewChunks, st.Packs)
	}
}

func TestBoundaryAndReuse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, Now: fixedNow},
		[]Target{{Name: "local", Dest: e.dest, Known: e.index()}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := w.Object("files.tar")
	io.WriteString(o, "header-a")
	if err := o.Boundary(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(o, "data-a")
	o.Boundary()
	o.Close()
	if n := len(o.Chunks()); n != 2 {
		t.Fatalf("two cuts gave %d chunks, want 2", n)
	}
	dataA := o.Chunks()[1]
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	w, _ = NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, Now: fixedNow},
		[]Target{{Name: "local", Dest: e.dest, Known: e.index()}})
	o, _ = w.Object("files.tar")
	io.WriteString(o, "header-b")
	if err := o.Reuse([]ChunkRef{dataA}); err != nil {
		t.Fatal(err)
	}
	missing := ChunkRef{ID: e.key.ID([]byte("never stored")), Size: 12}
	if err := o.Reuse([]ChunkRef{missing}); !errors.Is(err, ErrReuseUnavailable) {
		t.Fatalf("reuse of a missing chunk: got %v, want ErrReuseUnavailable", err)
	}
	o.Close()
	st, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.NewChunks != 1 {
		t.Errorf("%d new chunks, want 1 (the header)", st.NewChunks)
	}
	got, err := e.restore(o.Chunks())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "header-bdata-a" {
		t.Fatalf("restored %q, want %q", got, "header-bdata-a")
	}
}

// TestStockTools opens a pack with tar and one chunk with age and zstd.
func TestStockTools(t *testing.T) {
	for _, tool := range []string{"tar", "age", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: %v", tool, err)
		}
	}
	e := newEnv(t)
	data := randomBytes(3, 3<<20)
	objs, _ := e.backup(map[string][]byte{"x": data}, 0)
	x := e.index()
	if len(x.Packs()) != 1 {
		t.Fatalf("%d packs, want 1", len(x.Packs()))
	}
	pack := filepath.Join(e.root, filepath.FromSlash(PackKey(testRepo, x.Packs()[0])))
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", pack, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v: %s", err, out)
	}
	idFile := filepath.Join(dir, "identity")
	if err := os.WriteFile(idFile, []byte(e.codec.identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var restored []byte
	for _, c := range objs["x"] {
		cmd := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d`, "sh", idFile, filepath.Join(dir, c.ID.String()))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("age -d | zstd -d of chunk %s: %v: %s", c.ID, err, stderr.String())
		}
		restored = append(restored, out...)
	}
	if !bytes.Equal(restored, data) {
		t.Fatal("chunks opened with age and zstd, concatenated, differ from the object")
	}

	// dd with the index's offsets gives the same sealed bytes as tar -x.
	loc, _ := x.Lookup(objs["x"][0].ID)
	cmd := exec.Command("sh", "-c", `dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none`, "sh", pack, strconv.FormatInt(loc.Offset, 10), strconv.FormatInt(loc.Length, 10))
	viaDD, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	viaTar, _ := os.ReadFile(filepath.Join(dir, objs["x"][0].ID.String()))
	if !bytes.Equal(viaDD, viaTar) {
		t.Fatal("dd at the index offset differs from the tar member")
	}
}

var _ drivers.Destination = (*local.Store)(nil)
