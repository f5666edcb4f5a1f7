package snapshot

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// codec is the resolved compression and encryption of a policy.
type codec struct {
	compression string
	level       int
	encryption  string // age, openssl, none
	recipients  []age.Recipient
	keyIDs      []string
	pass        []byte // openssl passphrase
	iterations  int
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
		for i, r := range recips {
			rec, err := age.ParseX25519Recipient(r)
			if err != nil {
				// Never quote the text: it may be a secret key pasted
				// into the wrong file.
				if strings.HasPrefix(strings.ToUpper(r), "AGE-SECRET-KEY-") {
					return nil, fmt.Errorf("spec.encryption.age: recipient %d is an age identity (a secret key), not a public key: give recipients only; keep the identity off this host", i+1)
				}
				return nil, fmt.Errorf("spec.encryption.age: recipient %d is not an age public key (age1...)", i+1)
			}
			c.recipients = append(c.recipients, rec)
			c.keyIDs = append(c.keyIDs, AgeKeyID(r))
		}
	case "openssl":
		pass, err := readOpenSSLPassphrase(enc.OpenSSL.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("spec.encryption.openssl.keyFile: %w", err)
		}
		c.pass = pass
		c.keyIDs = []string{OpenSSLKeyID(pass)}
		c.iterations = enc.OpenSSL.Iterations
		if c.iterations == 0 {
			c.iterations = DefaultOpenSSLIterations
		}
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
	enc = v1.SnapshotCodec{Algorithm: c.encryption, Iterations: c.iterations}
	if len(c.keyIDs) > 0 {
		enc.KeyID = c.keyIDs[0]
	}
	if len(c.keyIDs) > 1 {
		enc.KeyIDs = c.keyIDs
	}
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
	case "openssl":
		ow, err := newOpenSSLWriter(w, c.pass, c.iterations)
		if err != nil {
			return nil, err
		}
		closers = append(closers, ow)
		out = ow
	case "none":
	default:
		return nil, fmt.Errorf("encryption %q: %w", c.encryption, errNotSupported)
	}
	if c.encryption != "none" && c.compression != v1.CompressionNone {
		// Encryption (and what follows it) runs behind a bounded queue, in
		// parallel with compression.
		aw := newAsyncWriter(out, asyncChunk, asyncChunks)
		closers = append([]io.Closer{aw}, closers...)
		out = aw
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

// decoder undoes what encode did, with the keys of a key ring.
type decoder struct {
	keys *KeyRing
	// repo is the repository reader of deduplicated snapshots, loaded once
	// (dedupReader); problems are the index files it found damaged.
	repo      *dedup.Reader
	repoKeyID string
	problems  []string
}

// decode returns a reader of the raw stream of an object stored with the
// manifest's codecs.
func (d *decoder) decode(m *v1.SnapshotManifest, r io.Reader) (io.ReadCloser, error) {
	in := r
	switch m.Encryption.Algorithm {
	case "age":
		dr, err := d.ageDecrypt(m, r)
		if err != nil {
			return nil, err
		}
		in = dr
	case "openssl":
		if err := checkIterations(m); err != nil {
			return nil, err
		}
		pass, err := d.keys.openSSLKey(m.Encryption.KeyID)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		or, err := newOpenSSLReader(r, pass, m.Encryption.Iterations)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		in = or
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

// ageDecrypt opens an age stream with the key ring's identities.
func (d *decoder) ageDecrypt(m *v1.SnapshotManifest, r io.Reader) (io.Reader, error) {
	keys := m.Encryption.KeyIDs
	if len(keys) == 0 {
		keys = []string{m.Encryption.KeyID}
	}
	if d.keys == nil || len(d.keys.identities) == 0 {
		return nil, fmt.Errorf("snapshot %s is encrypted with age to key %s: pass its identity with --identity FILE (looked in: %s)",
			m.ID, strings.Join(keys, ", "), d.keys.where())
	}
	dr, err := age.Decrypt(r, d.keys.identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("snapshot %s is encrypted to key %s, and none of the identities given matches it (looked in: %s)",
				m.ID, strings.Join(keys, ", "), d.keys.where())
		}
		return nil, fmt.Errorf("decrypt snapshot %s: %w", m.ID, err)
	}
	return dr, nil
}

// seal finishes a manifest for storage: in openssl mode it adds the HMAC;
// in age mode it also returns the manifest encrypted to the recipients (the
// sealed copy). body is the manifest file to write.
func (c *codec) seal(m *v1.SnapshotManifest) (sealed, body []byte, err error) {
	switch c.encryption {
	case "openssl":
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return nil, nil, err
		}
		m.HMAC = nil
		canon, err := json.Marshal(m)
		if err != nil {
			return nil, nil, err
		}
		mac, err := manifestHMAC(c.pass, salt, c.iterations, canon)
		if err != nil {
			return nil, nil, err
		}
		m.HMAC = &v1.SnapshotHMAC{Algorithm: "HMAC-SHA256", Salt: hex.EncodeToString(salt), Value: hex.EncodeToString(mac)}
	case "age":
		canon, err := json.Marshal(m)
		if err != nil {
			return nil, nil, err
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, c.recipients...)
		if err != nil {
			return nil, nil, err
		}
		if _, err := w.Write(canon); err != nil {
			return nil, nil, err
		}
		if err := w.Close(); err != nil {
			return nil, nil, err
		}
		sealed = buf.Bytes()
	}
	body, err = json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return sealed, append(body, '\n'), nil
}

// authenticate proves a manifest was written by a holder of the policy's
// key before any of its objects is trusted: the HMAC in openssl mode, the
// sealed copy in age mode. Unencrypted snapshots have nothing to check
// beyond each object's SHA-256.
func (d *decoder) authenticate(m *v1.SnapshotManifest, sealed func() ([]byte, error)) error {
	switch m.Encryption.Algorithm {
	case "none", "":
		if d.keys == nil || d.keys.allowClear || d.keys.policyMode == "none" {
			return nil
		}
		return fmt.Errorf("snapshot %s says it is not encrypted, so nothing proves who wrote it; its policy encrypts with %s: refusing it (it may have been replaced). Pass --allow-unencrypted if you know it is genuine",
			m.ID, cmpOr(d.keys.policyMode, "a key"))
	}
	if err := checkIterations(m); err != nil {
		return err
	}
	switch m.Encryption.Algorithm {
	case "openssl":
		pass, err := d.keys.openSSLKey(m.Encryption.KeyID)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		if m.HMAC == nil {
			return fmt.Errorf("snapshot %s: the manifest has no HMAC: it was edited or is not from aegis", m.ID)
		}
		salt, err1 := hex.DecodeString(m.HMAC.Salt)
		want, err2 := hex.DecodeString(m.HMAC.Value)
		if err1 != nil || err2 != nil || m.HMAC.Algorithm != "HMAC-SHA256" {
			return fmt.Errorf("snapshot %s: the manifest's HMAC is malformed: it was edited", m.ID)
		}
		c := *m
		c.HMAC = nil
		canon, err := json.Marshal(&c)
		if err != nil {
			return err
		}
		got, err := manifestHMAC(pass, salt, m.Encryption.Iterations, canon)
		if err != nil {
			return err
		}
		if !hmac.Equal(got, want) {
			return fmt.Errorf("snapshot %s: the manifest fails its HMAC check: it was edited, or key %s is not the key it was written with", m.ID, m.Encryption.KeyID)
		}
	case "age":
		enc, err := sealed()
		if err != nil {
			return fmt.Errorf("snapshot %s: read the sealed manifest: %w", m.ID, err)
		}
		r, err := d.ageDecrypt(m, bytes.NewReader(enc))
		if err != nil {
			return err
		}
		plain, err := io.ReadAll(io.LimitReader(r, 16<<20))
		if err != nil {
			return fmt.Errorf("snapshot %s: the sealed manifest does not decrypt: %w", m.ID, err)
		}
		var inner v1.SnapshotManifest
		if err := json.Unmarshal(plain, &inner); err != nil {
			return fmt.Errorf("snapshot %s: the sealed manifest is not valid: %w", m.ID, err)
		}
		a, _ := json.Marshal(&inner)
		b, _ := json.Marshal(m)
		if !bytes.Equal(a, b) {
			return fmt.Errorf("snapshot %s: the manifest differs from its sealed copy: it was edited, or objects were swapped", m.ID)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkIterations bounds the PBKDF2 cost a manifest may ask for: the field
// is not authenticated before it is used, and a forged one must not make
// restore compute for hours.
func checkIterations(m *v1.SnapshotManifest) error {
	if m.Encryption.Algorithm != "openssl" {
		return nil
	}
	if n := m.Encryption.Iterations; n < 1000 || n > 10_000_000 {
		return fmt.Errorf("snapshot %s: implausible PBKDF2 iteration count %d in the manifest: it was edited", m.ID, n)
	}
	return nil
}
