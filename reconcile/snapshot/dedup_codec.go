package snapshot

import (
	"bytes"
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// chunkSealer seals each chunk of a deduplicated snapshot alone with the
// policy's codecs, so that one chunk file opens with `age -d | zstd -d` (or
// `openssl enc -d ... | zstd -d`). It shares one zstd encoder: a zstd stream
// per chunk is several times slower.
type chunkSealer struct {
	c   *codec
	enc *zstd.Encoder
}

func newChunkSealer(c *codec) (*chunkSealer, error) {
	s := &chunkSealer{c: c}
	if c.compression == v1.CompressionZstd {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.level)), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		s.enc = enc
	}
	return s, nil
}

// Seal implements dedup.Sealer.
func (s *chunkSealer) Seal(w io.Writer) (io.WriteCloser, error) {
	return &sealingWriter{s: s, w: w}, nil
}

// sealingWriter gathers one chunk's plaintext (at most the chunker's
// maximum) and seals it on Close.
type sealingWriter struct {
	s   *chunkSealer
	w   io.Writer
	buf bytes.Buffer
}

func (sw *sealingWriter) Write(p []byte) (int, error) { return sw.buf.Write(p) }

func (sw *sealingWriter) Close() error {
	packed, err := sw.s.compress(sw.buf.Bytes())
	if err != nil {
		return fmt.Errorf("compress chunk: %w", err)
	}
	c := sw.s.c
	var ew io.WriteCloser
	switch c.encryption {
	case "age":
		ew, err = age.Encrypt(sw.w, c.recipients...)
	case "openssl":
		ew, err = newOpenSSLWriter(sw.w, c.pass, c.iterations)
	case "none":
		ew = nopWriteCloser{sw.w}
	default:
		err = fmt.Errorf("encryption %q: %w", c.encryption, errNotSupported)
	}
	if err != nil {
		return err
	}
	if _, err := ew.Write(packed); err != nil {
		return err
	}
	return ew.Close()
}

func (s *chunkSealer) compress(plain []byte) ([]byte, error) {
	switch s.c.compression {
	case v1.CompressionZstd:
		return s.enc.EncodeAll(plain, make([]byte, 0, len(plain)/2+64)), nil
	case v1.CompressionGzip:
		var b bytes.Buffer
		gw, err := gzip.NewWriterLevel(&b, s.c.level)
		if err != nil {
			return nil, err
		}
		if _, err := gw.Write(plain); err != nil {
			return nil, err
		}
		if err := gw.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case v1.CompressionNone:
		return plain, nil
	}
	return nil, fmt.Errorf("compression %q: %w", s.c.compression, errNotSupported)
}

// chunkOpener opens the chunks of the snapshot m with a key ring.
type chunkOpener struct {
	dec *decoder
	m   *v1.SnapshotManifest
}

// Open implements dedup.Opener.
func (o chunkOpener) Open(r io.Reader) (io.ReadCloser, error) { return o.dec.decode(o.m, r) }

// Interface guards.
var (
	_ dedup.Sealer = (*chunkSealer)(nil)
	_ dedup.Opener = chunkOpener{}
)
