package snapshot

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// The openssl mode writes exactly what
//
//	openssl enc -aes-256-cbc -pbkdf2 -iter N -md sha256 -pass file:KEYFILE
//
// writes: "Salted__", an 8-byte random salt, then AES-256-CBC with PKCS#7
// padding, key and IV taken from PBKDF2-HMAC-SHA256(passphrase, salt, N,
// 48 bytes). CBC alone does not detect tampering; the snapshot manifest
// therefore carries each object's SHA-256 and an HMAC keyed from the same
// passphrase (see manifestHMAC).

const (
	opensslMagic = "Salted__"
	// DefaultOpenSSLIterations is the PBKDF2 iteration count when a policy
	// names none (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
	DefaultOpenSSLIterations = 600000
)

// readOpenSSLPassphrase reads a key file as `openssl -pass file:` does: its
// first line, without the line ending. The file must not be readable by
// group or others.
func readOpenSSLPassphrase(name string) ([]byte, error) {
	if err := v1.CheckSecretFile(name); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read key file %s: %w", name, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if strings.Contains(line, "\r") {
		// openssl -pass file: keeps a \r: the passphrase would differ
		// between Aegis and the documented manual recovery.
		return nil, fmt.Errorf("key file %s has a Windows line ending (\\r\\n): convert it (dos2unix) so openssl reads the same passphrase", name)
	}
	if line == "" {
		return nil, fmt.Errorf("key file %s is empty", name)
	}
	return []byte(line), nil
}

// ReadPassphraseFile reads a passphrase from the first line of a file that
// neither group nor others can read.
func ReadPassphraseFile(name string) ([]byte, error) { return readOpenSSLPassphrase(name) }

// OpenSSLKeyID names an openssl passphrase without revealing it. The ID is
// stored in plain manifests, so it is derived through PBKDF2 (100,000
// iterations, a fixed salt): testing a guessed passphrase against the ID
// costs about what testing it against the data does, even for a passphrase
// a person chose.
func OpenSSLKeyID(pass []byte) string {
	dk, err := pbkdf2.Key(sha256.New, string(pass), []byte("aegis openssl key id"), 100000, 32)
	if err != nil {
		return "ossl-invalid"
	}
	return "ossl-" + hex.EncodeToString(dk)[:12]
}

func opensslKeyIV(pass, salt []byte, iter int) (key, iv []byte, err error) {
	dk, err := pbkdf2.Key(sha256.New, string(pass), salt, iter, 48)
	if err != nil {
		return nil, nil, err
	}
	return dk[:32], dk[32:], nil
}

// opensslWriter encrypts a stream the way openssl enc does.
type opensslWriter struct {
	w    io.Writer
	mode cipher.BlockMode
	buf  []byte // plaintext not yet a whole block
	out  []byte
}

func newOpenSSLWriter(w io.Writer, pass []byte, iter int) (*opensslWriter, error) {
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	key, iv, err := opensslKeyIV(pass, salt, iter)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(append([]byte(opensslMagic), salt...)); err != nil {
		return nil, err
	}
	return &opensslWriter{w: w, mode: cipher.NewCBCEncrypter(block, iv)}, nil
}

func (o *opensslWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(o.buf) > 0 {
		need := aes.BlockSize - len(o.buf)
		if len(p) < need {
			o.buf = append(o.buf, p...)
			return n, nil
		}
		o.buf = append(o.buf, p[:need]...)
		p = p[need:]
		if err := o.emit(o.buf); err != nil {
			return 0, err
		}
		o.buf = o.buf[:0]
	}
	whole := len(p) - len(p)%aes.BlockSize
	if whole > 0 {
		if err := o.emit(p[:whole]); err != nil {
			return 0, err
		}
	}
	o.buf = append(o.buf, p[whole:]...)
	return n, nil
}

func (o *opensslWriter) emit(plain []byte) error {
	if cap(o.out) < len(plain) {
		o.out = make([]byte, len(plain))
	}
	out := o.out[:len(plain)]
	o.mode.CryptBlocks(out, plain)
	_, err := o.w.Write(out)
	return err
}

// Close pads the last block (PKCS#7) and writes it. It does not close the
// underlying writer.
func (o *opensslWriter) Close() error {
	pad := aes.BlockSize - len(o.buf)
	last := append(o.buf, bytes.Repeat([]byte{byte(pad)}, pad)...)
	o.buf = nil
	return o.emit(last)
}

// errBadDecrypt is what a wrong key or damaged data looks like in CBC mode.
var errBadDecrypt = errors.New("bad decrypt: wrong key, or the data is damaged")

// opensslReader decrypts what opensslWriter (or openssl enc) wrote. The
// last decrypted block is held back until the end of the stream, where its
// padding is checked and removed.
type opensslReader struct {
	r       io.Reader
	mode    cipher.BlockMode
	tmp     []byte
	ct      []byte // ciphertext not yet decrypted (less than a block)
	plain   []byte // decrypted, ready to hand out
	pending []byte // the last decrypted block
	eof     bool
}

func newOpenSSLReader(r io.Reader, pass []byte, iter int) (*opensslReader, error) {
	head := make([]byte, 16)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("read openssl header: %w", err)
	}
	if string(head[:8]) != opensslMagic {
		return nil, errors.New("not an openssl enc stream: no Salted__ header")
	}
	key, iv, err := opensslKeyIV(pass, head[8:], iter)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &opensslReader{r: r, mode: cipher.NewCBCDecrypter(block, iv), tmp: make([]byte, 64<<10)}, nil
}

func (o *opensslReader) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.eof {
			return 0, io.EOF
		}
		if err := o.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

func (o *opensslReader) fill() error {
	n, err := o.r.Read(o.tmp)
	o.ct = append(o.ct, o.tmp[:n]...)
	if err != nil && err != io.EOF {
		return err
	}
	if whole := len(o.ct) - len(o.ct)%aes.BlockSize; whole > 0 {
		out := make([]byte, whole)
		o.mode.CryptBlocks(out, o.ct[:whole])
		o.plain = append(o.plain[:0], o.pending...)
		o.plain = append(o.plain, out[:whole-aes.BlockSize]...)
		o.pending = append(o.pending[:0], out[whole-aes.BlockSize:]...)
		o.ct = append(o.ct[:0], o.ct[whole:]...)
	}
	if err == io.EOF {
		return o.finish()
	}
	return nil
}

func (o *opensslReader) finish() error {
	o.eof = true
	if len(o.ct) != 0 {
		return errors.New("truncated openssl stream: not a whole number of blocks")
	}
	if len(o.pending) != aes.BlockSize {
		return errBadDecrypt
	}
	pad := int(o.pending[aes.BlockSize-1])
	if pad == 0 || pad > aes.BlockSize {
		return errBadDecrypt
	}
	for _, b := range o.pending[aes.BlockSize-pad:] {
		if int(b) != pad {
			return errBadDecrypt
		}
	}
	o.plain = append(o.plain, o.pending[:aes.BlockSize-pad]...)
	o.pending = nil
	return nil
}

// manifestHMAC computes the HMAC-SHA256 that authenticates a manifest in
// openssl mode. Its key comes from the passphrase through PBKDF2 with the
// manifest's own salt and the policy's iteration count, so the HMAC is no
// faster to attack than the data itself.
func manifestHMAC(pass, salt []byte, iter int, body []byte) ([]byte, error) {
	key, err := pbkdf2.Key(sha256.New, string(pass), append([]byte("aegis manifest hmac\x00"), salt...), iter, 32)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil), nil
}
