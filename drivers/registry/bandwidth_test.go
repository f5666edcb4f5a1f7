package registry

import (
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/ratelimit"
)

func TestDestinationBandwidth(t *testing.T) {
	dest := func(b *v1.Bandwidth) *v1.Destination {
		return &v1.Destination{
			Metadata: v1.ObjectMeta{Name: "disk"},
			Spec:     v1.DestinationSpec{Local: &v1.LocalDestination{Path: t.TempDir()}, Bandwidth: b},
		}
	}
	d, err := Destination(dest(&v1.Bandwidth{Limit: "5MiB/s"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, want := ratelimit.Describe(d), "5MiB/s (always 5MiB/s)"; got != want {
		t.Errorf("limited destination: Describe = %q, want %q", got, want)
	}

	d, err = Destination(dest(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := ratelimit.Describe(d); got != "" {
		t.Errorf("destination without bandwidth: Describe = %q, want empty", got)
	}

	_, err = Destination(dest(&v1.Bandwidth{Limit: "fast"}), Options{})
	if want := `destination disk: bandwidth.limit: invalid rate "fast": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`; err == nil || err.Error() != want {
		t.Errorf("invalid bandwidth: error = %v, want %q", err, want)
	}
}
