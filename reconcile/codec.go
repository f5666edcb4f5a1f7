package reconcile

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// codec is the resolved compression and encryption of a policy.
type codec struct {
	compression string
	level       int
	encryption  string // age, openssl, none
	recipients  []age.Recipient
	recipientsS []string
	keyID       string
}

// newCodec resolves a policy's compression and encryption, reading the
// recipients file if one is named.
func newCodec(p *v1.BackupPolicy) (*codec, error) {
	c := &codec{compression: v1.CompressionZstd, level: 3}
	if cs := p.Spec.Compression; cs != nil {
		if cs.Algorithm != "" {
			c.compression = cs.Algorithm
		}
		c.level = cs.Level
		if c.level == 0 {
			c.level = defaultLevel(c.compression)
		}
	}
	enc := p.Spec.Encryption
	if enc == nil {
		return nil, fmt.Errorf("spec.encryption is required")
	}
	c.encryption = enc.Mode()
	switch c.encryption {
	case "age":
		recips := append([]string(nil), enc.Age.Recipients...)
		if enc.Age.RecipientsFile != "" {
			more, err := readRecipientsFile(enc.Age.RecipientsFile)
			if err != nil {
				return nil, err
			}
			recips = append(recips, more...)
		}
		if len(recips) == 0 {
			return nil, fmt.Errorf("spec.encryption.age: no recipients")
		}
		for _, r := range recips {
			rec, err := age.ParseX25519Recipient(r)
			if err != nil {
				return nil, fmt.Errorf("spec.encryption.age: recipient %q: %v", r, err)
			}
			c.recipients = append(c.recipients, rec)
		}
		sort.Strings(recips)
		c.recipientsS = recips
		sum := sha256.Sum256([]byte(strings.Join(recips, "\n")))
		c.keyID = "age-" + hex.EncodeToString(sum[:6])
	case "none":
	default:
		return nil, fmt.Errorf("encryption %q: %w", c.encryption, errNotSupported)
	}
	return c, nil
}

var errNotSupported = errors.New("not supported yet")

func defaultLevel(alg string) int {
	switch alg {
	case v1.CompressionZstd:
		return 3
	case v1.CompressionGzip:
		return 6
	}
	return 0
}

// readRecipientsFile reads age recipients, one per line, # comments allowed,
// as age -R does.
func readRecipientsFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// suffix is the file name extension of a stored object.
func (c *codec) suffix() string {
	s := ""
	switch c.compression {
	case v1.CompressionZstd:
		s += ".zst"
	case v1.CompressionGzip:
		s += ".gz"
	}
	switch c.encryption {
	case "age":
		s += ".age"
	case "openssl":
		s += ".enc"
	}
	return s
}

// manifestCodecs describes the codec for the snapshot manifest.
func (c *codec) manifestCodecs() (comp, enc v1.SnapshotCodec) {
	comp = v1.SnapshotCodec{Algorithm: c.compression, Level: c.level}
	enc = v1.SnapshotCodec{Algorithm: c.encryption, KeyID: c.keyID, Recipients: c.recipientsS}
	return comp, enc
}

// encode returns a writer that compresses then encrypts into w. Closing it
// flushes both stages but does not close w.
func (c *codec) encode(w io.Writer) (io.WriteCloser, error) {
	var closers []io.Closer
	out := w
	switch c.encryption {
	case "age":
		ew, err := age.Encrypt(w, c.recipients...)
		if err != nil {
			return nil, err
		}
		closers = append(closers, ew)
		out = ew
	case "none":
	default:
		return nil, fmt.Errorf("encryption %q: %w", c.encryption, errNotSupported)
	}
	var cw io.WriteCloser
	switch c.compression {
	case v1.CompressionZstd:
		zw, err := zstd.NewWriter(out,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.level)),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return nil, err
		}
		cw = zw
	case v1.CompressionGzip:
		gw, err := gzip.NewWriterLevel(out, c.level)
		if err != nil {
			return nil, err
		}
		cw = gw
	case v1.CompressionNone:
		cw = nopWriteCloser{out}
	default:
		return nil, fmt.Errorf("compression %q: %w", c.compression, errNotSupported)
	}
	// Close order: compressor first (flushes into the encryptor), then the
	// encryptor.
	closers = append([]io.Closer{cw}, closers...)
	return &chainWriter{Writer: cw, closers: closers}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

type chainWriter struct {
	io.Writer
	closers []io.Closer
}

func (c *chainWriter) Close() error {
	var errs []error
	for _, cl := range c.closers {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

// decoder undoes what encode did. Identities are needed for age.
type decoder struct {
	identities []age.Identity
}

// decode returns a reader of the raw stream of an object stored with the
// manifest's codecs.
func (d *decoder) decode(m *v1.SnapshotManifest, r io.Reader) (io.ReadCloser, error) {
	in := r
	switch m.Encryption.Algorithm {
	case "age":
		if len(d.identities) == 0 {
			return nil, fmt.Errorf("snapshot %s is encrypted with age (key %s): pass --identity FILE", m.ID, m.Encryption.KeyID)
		}
		dr, err := age.Decrypt(r, d.identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypt snapshot %s (key %s): %w", m.ID, m.Encryption.KeyID, err)
		}
		in = dr
	case "none", "":
	default:
		return nil, fmt.Errorf("snapshot %s: encryption %q: %w", m.ID, m.Encryption.Algorithm, errNotSupported)
	}
	switch m.Compression.Algorithm {
	case v1.CompressionZstd:
		zr, err := zstd.NewReader(in)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case v1.CompressionGzip:
		gr, err := gzip.NewReader(in)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		return gr, nil
	case v1.CompressionNone, "":
		return io.NopCloser(in), nil
	}
	return nil, fmt.Errorf("snapshot %s: compression %q: %w", m.ID, m.Compression.Algorithm, errNotSupported)
}

// loadIdentities reads an age identity file (as age -i does), prompting for
// nothing: passphrase-protected files come with issue-level support later.
func loadIdentities(name string) ([]age.Identity, error) {
	if name == "" {
		return nil, nil
	}
	if err := checkSecretMode(name); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", name, err)
	}
	return ids, nil
}

// checkSecretMode refuses a key or secret file readable by group or others.
func checkSecretMode(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret file %s is readable by group or others (mode %04o); chmod 600 it", name, fi.Mode().Perm())
	}
	return nil
}
