package dedup

import (
	"errors"
	"fmt"
	"io"

	cdc "github.com/PlakarKorp/go-cdc-chunkers"
	// The fastcdc package registers its algorithms with cdc when imported;
	// the library offers no other way to construct them.
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"
)

// Chunk size bounds: FastCDC cuts between MinChunk and MaxChunk bytes, about
// AvgChunk on average. Entry boundaries (ObjectWriter.Boundary) cut too, so a
// small file is one chunk of its own.
const (
	MinChunk = 256 << 10
	AvgChunk = 1 << 20
	MaxChunk = 4 << 20
)

// chunkAlgorithm is the spec-faithful FastCDC of go-cdc-chunkers, chosen by
// BenchmarkChunker* (docs/dedup.md). Changing it changes every cut point, so
// it only changes with a new dedup chain.
const chunkAlgorithm = "fastcdc-v1.0.0"

// segmenter cuts a stream written to it into chunks, calling emit for each in
// order. Cut ends the current segment: the next byte starts a new chunk.
type segmenter struct {
	emit func([]byte) error
	ch   *cdc.Chunker

	pw   *io.PipeWriter
	done chan error
}

func newSegmenter(emit func([]byte) error) (*segmenter, error) {
	buf := make([]byte, 2*MaxChunk)
	ch, err := cdc.NewChunkerBuffer(chunkAlgorithm, eofReader{}, &cdc.ChunkerOpts{MinSize: MinChunk, NormalSize: AvgChunk, MaxSize: MaxChunk}, buf)
	if err != nil {
		return nil, fmt.Errorf("create chunker: %w", err)
	}
	return &segmenter{emit: emit, ch: ch}, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func (s *segmenter) start() {
	pr, pw := io.Pipe()
	s.pw = pw
	s.done = make(chan error, 1)
	s.ch.Reset(pr)
	go func() {
		err := s.run()
		pr.CloseWithError(err)
		s.done <- err
	}()
}

func (s *segmenter) run() error {
	for {
		chunk, err := s.ch.Next()
		if len(chunk) > 0 {
			if e := s.emit(chunk); e != nil {
				return e
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *segmenter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.pw == nil {
		s.start()
	}
	return s.pw.Write(p)
}

// Cut ends the current chunk (if any bytes were written since the last cut)
// and waits until all its chunks were emitted.
func (s *segmenter) Cut() error {
	if s.pw == nil {
		return nil
	}
	s.pw.Close()
	err := <-s.done
	s.pw = nil
	return err
}
