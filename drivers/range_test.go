package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestExactReader(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name    string
		r       io.Reader
		n       int64
		want    string
		wantErr error
	}{
		{"exact", strings.NewReader("abcdef"), 6, "abcdef", nil},
		{"shorter range", strings.NewReader("abcdef"), 3, "abc", nil},
		{"zero", strings.NewReader("abcdef"), 0, "", nil},
		{"object ends first", strings.NewReader("abc"), 5, "abc", io.ErrUnexpectedEOF},
		{"empty object", strings.NewReader(""), 1, "", io.ErrUnexpectedEOF},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("abcdef")), 4, "abcd", nil},
		{"data then EOF together", iotest.DataErrReader(strings.NewReader("abc")), 3, "abc", nil},
		{"reader fails", io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom)), 5, "ab", boom},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := io.ReadAll(ExactReader(io.NopCloser(c.r), c.n))
			if string(got) != c.want || !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Errorf("read %q, %v; want %q, %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestCheckRange(t *testing.T) {
	for _, c := range []struct {
		offset, length int64
		ok             bool
	}{
		{0, 0, true}, {5, 10, true}, {1 << 62, 1<<62 - 1, true}, {1 << 62, 1 << 62, false},
		{-1, 0, false}, {0, -1, false}, {1, 1<<63 - 1, false},
	} {
		err := CheckRange(c.offset, c.length)
		if (err == nil) != c.ok {
			t.Errorf("CheckRange(%d, %d) = %v, want ok %v", c.offset, c.length, err, c.ok)
		}
		if err != nil && (!IsPermanent(err) || err.Error() != fmt.Sprintf("invalid range: offset %d, length %d", c.offset, c.length)) {
			t.Errorf("CheckRange(%d, %d) = %v; want a permanent error naming the range", c.offset, c.length, err)
		}
	}
}

type wrapped struct{ Destination }

func (w wrapped) Unwrap() Destination { return w.Destination }

type retaining struct{ Destination }

func (retaining) RetainedUntil(context.Context, string) (time.Time, error) { return time.Time{}, nil }
func (retaining) Retain(context.Context, string, time.Time) error          { return nil }

func TestAs(t *testing.T) {
	inner := retaining{}
	if _, ok := As[Retainer](wrapped{wrapped{inner}}); !ok {
		t.Errorf("As[Retainer] through two decorators: not found")
	}
	if _, ok := As[Retainer](wrapped{}); ok {
		t.Errorf("As[Retainer] of a destination without one: found")
	}
	if _, ok := As[TempCleaner](nil); ok {
		t.Errorf("As of nil: found")
	}
}
