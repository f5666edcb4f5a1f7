package snapshot

import (
	"context"
	"fmt"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/docker"
)

func TestVolumeTargets(t *testing.T) {
	manifest := func(volumes ...string) *v1.SnapshotManifest {
		m := &v1.SnapshotManifest{ID: "20261125T120000Z-abcdef"}
		for _, v := range volumes {
			m.Objects = append(m.Objects, v1.SnapshotObject{Name: v + docker.ObjectExt, Format: docker.ObjectFormat})
		}
		return m
	}
	for _, c := range []struct {
		volumes []string
		specs   []string
		want    string
		err     string
	}{
		{[]string{"uploads"}, []string{"uploads-restored"}, "map[uploads:uploads-restored]", ""},
		{[]string{"a", "b"}, []string{"b=b2", "a=a2"}, "map[a:a2 b:b2]", ""},
		{[]string{"a", "b"}, []string{"b2"}, "", "snapshot 20261125T120000Z-abcdef holds 2 volumes (a, b): say which goes where with --to-volume VOLUME=NAME"},
		{[]string{"a"}, []string{"c=c2"}, "", `snapshot 20261125T120000Z-abcdef holds no volume "c" (it has: a)`},
	} {
		got, err := VolumeTargets(manifest(c.volumes...), c.specs)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%v %v: err = %v, want %q", c.volumes, c.specs, err, c.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("%v %v = %v, %v; want %s", c.volumes, c.specs, got, err, c.want)
		}
	}
}

func TestLoadDumpsOfOtherKindsLoadsNothing(t *testing.T) {
	loaded, notes, err := LoadDumps(context.Background(), t.TempDir(), &v1.SnapshotManifest{SourceKind: "files"}, LoadTarget{})
	if loaded != nil || notes != nil || err != nil {
		t.Errorf("LoadDumps(files) = %v, %v, %v", loaded, notes, err)
	}
}
