package drill

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aegis-backup/aegis/drivers"
)

// ErrReadOnly is returned by every write to a destination during a drill.
var ErrReadOnly = errors.New("a restore drill never writes to a destination")

// ReadOnly wraps d so that Put and Delete fail with ErrReadOnly (marked
// permanent) before reaching it; reads pass through.
func ReadOnly(d drivers.Destination) drivers.Destination { return readOnly{d} }

type readOnly struct{ d drivers.Destination }

func (r readOnly) Put(_ context.Context, key string, _ io.Reader) (int64, error) {
	return 0, drivers.Permanent(fmt.Errorf("put %s: %w", key, ErrReadOnly))
}

func (r readOnly) Delete(_ context.Context, key string) error {
	return drivers.Permanent(fmt.Errorf("delete %s: %w", key, ErrReadOnly))
}

func (r readOnly) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return r.d.Get(ctx, key)
}

func (r readOnly) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return r.d.GetRange(ctx, key, offset, length)
}

func (r readOnly) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	return r.d.Stat(ctx, key)
}

func (r readOnly) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	return r.d.List(ctx, prefix)
}

// Check reports reachability only: the write probe of a destination's own
// Check is a write.
func (r readOnly) Check(ctx context.Context) error {
	_, err := r.d.List(ctx, "")
	return err
}

func (r readOnly) Close() error { return r.d.Close() }

var _ drivers.Destination = readOnly{}
