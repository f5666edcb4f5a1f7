package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/local"
)

// TestAbandonedObjectIsDropped: a source that fails midway abandons its
// object (CloseWithError) while the codec's asynchronous stage is still
// writing; no destination keeps anything and none is blamed. Run with
// -race, it also proves abort does not race with that stage.
func TestAbandonedObjectIsDropped(t *testing.T) {
	ident, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "k.key")
	os.WriteFile(keyFile, []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"), 0o600)
	encs := map[string]v1.Encryption{
		"age":     {Age: &v1.AgeEncryption{Recipients: []string{ident.Recipient().String()}}},
		"openssl": {OpenSSL: &v1.OpenSSLEncryption{KeyFile: keyFile, Iterations: 10000}},
	}
	for name, enc := range encs {
		for _, comp := range []string{"zstd", "gzip"} {
			t.Run(name+"/"+comp, func(t *testing.T) {
				c, err := newCodec(&v1.BackupPolicy{Spec: v1.BackupPolicySpec{Compression: &v1.Compression{Algorithm: comp}, Encryption: &enc}})
				if err != nil {
					t.Fatal(err)
				}
				dirs := []string{t.TempDir(), t.TempDir()}
				var targets []*target
				for i, d := range dirs {
					targets = append(targets, &target{name: string(rune('a' + i)), dest: local.New(d)})
				}
				sw := newSnapshotWriter(c, v1.SnapshotManifest{Host: "h", Policy: "p", Source: "s", ID: v1.NewSnapshotID(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))}, targets)
				w, err := sw.Create(context.Background(), "files.tar", "tar")
				if err != nil {
					t.Fatal(err)
				}
				chunk := make([]byte, 256<<10)
				for range 24 { // 6 MiB of incompressible data: several chunks in flight
					rand.Read(chunk)
					if _, err := w.Write(chunk); err != nil {
						t.Fatal(err)
					}
				}
				cw := w.(interface{ CloseWithError(error) error })
				if err := cw.CloseWithError(errors.New("dump tool failed")); err != nil {
					t.Fatal(err)
				}
				sw.rollback(context.Background(), slog.New(slog.DiscardHandler))
				for _, tg := range targets {
					if tg.err != nil {
						t.Errorf("destination %s blamed for the source's failure: %v", tg.name, tg.err)
					}
				}
				if len(sw.manifest.Objects) != 0 {
					t.Errorf("abandoned object listed in the manifest: %+v", sw.manifest.Objects)
				}
				for _, d := range dirs {
					objs, err := local.New(d).List(context.Background(), "")
					if err != nil || len(objs) != 0 {
						t.Errorf("destination %s holds %v (err %v) after an abandoned object", d, objs, err)
					}
					var leftovers bytes.Buffer
					filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
						if err == nil && !fi.IsDir() {
							leftovers.WriteString(p + "\n")
						}
						return nil
					})
					if leftovers.Len() > 0 {
						t.Errorf("files left behind:\n%s", leftovers.String())
					}
				}
			})
		}
	}
}
