package registry

import (
	"errors"
	"slices"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// TestEveryKindHasADriver: each driver block of the manifest types has its
// entry in the tables, so no kind the API accepts is reported unsupported.
func TestEveryKindHasADriver(t *testing.T) {
	for _, spec := range []v1.DestinationSpec{
		{Local: &v1.LocalDestination{}}, {S3: &v1.S3Destination{}}, {SFTP: &v1.SFTPDestination{}}, {FTP: &v1.FTPDestination{}},
	} {
		d := &v1.Destination{Metadata: v1.ObjectMeta{Name: "d"}, Spec: spec}
		if msg := UnsupportedDestination(d); msg != "" {
			t.Errorf("destination kind %q: %s", spec.Driver(), msg)
		}
	}
	var kinds []string
	for _, src := range []v1.Source{
		{Files: &v1.FilesSource{}}, {Postgres: &v1.PostgresSource{}}, {MySQL: &v1.MySQLSource{}},
		{DockerVolume: &v1.DockerVolumeSource{}}, {System: &v1.SystemSource{}},
	} {
		kinds = append(kinds, src.Driver())
		if _, err := Source(src, Options{}); err != nil {
			t.Errorf("source kind %q: %v", src.Driver(), err)
		}
		p := &v1.BackupPolicy{Spec: v1.BackupPolicySpec{Sources: []v1.Source{src}}}
		if msgs := Unsupported(p, nil); len(msgs) != 0 {
			t.Errorf("source kind %q: %q", src.Driver(), msgs)
		}
	}
	for kind := range sources {
		if !slices.Contains(kinds, kind) {
			t.Errorf("source kind %q is in the table but not in the API", kind)
		}
	}
	dest, err := Destination(&v1.Destination{Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: t.TempDir()}}}, Options{})
	if err != nil {
		t.Fatalf("Destination(local): %v", err)
	}
	dest.Close()
}

func TestNoDriverBlock(t *testing.T) {
	_, err := Destination(&v1.Destination{Metadata: v1.ObjectMeta{Name: "d"}}, Options{})
	if err == nil || err.Error() != "destination d: no driver block set" {
		t.Errorf("Destination: %v", err)
	}
	_, err = Source(v1.Source{Name: "s"}, Options{})
	if err == nil || err.Error() != "source s: no driver block set" {
		t.Errorf("Source: %v", err)
	}
	if errors.Is(err, drivers.ErrNotSupported) {
		t.Errorf("Source: %v; a missing block is not an unsupported driver", err)
	}
	p := &v1.BackupPolicy{Spec: v1.BackupPolicySpec{Sources: []v1.Source{{Name: "s"}}, Destinations: []string{"d", "gone"}}}
	got := Unsupported(p, map[string]*v1.Destination{"d": {Metadata: v1.ObjectMeta{Name: "d"}}})
	want := []string{
		"source s: driver  is not supported yet by this build of aegis-agent",
		"destination d: driver  is not supported yet by this build of aegis-agent",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unsupported:\n got %q\nwant %q", got, want)
	}
}
