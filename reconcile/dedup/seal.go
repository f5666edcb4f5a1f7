package dedup

import "io"

// Sealer compresses then encrypts one chunk. Seal returns a writer that
// takes the chunk's plaintext; closing it finishes the sealed stream in w.
// Each sealed chunk must open on its own (for age: `age -d | zstd -d`).
type Sealer interface {
	Seal(w io.Writer) (io.WriteCloser, error)
}

// Opener undoes Sealer: it returns the plaintext of the sealed chunk read
// from r, and fails on a chunk that was not sealed for it or was altered.
type Opener interface {
	Open(r io.Reader) (io.ReadCloser, error)
}
