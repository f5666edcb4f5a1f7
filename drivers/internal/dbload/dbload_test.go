package dbload

import (
	"fmt"
	"slices"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

var pg = Dumps{Kind: "postgres", Ext: ".pgdump", Format: "pgdump", MetaDatabases: "databases"}

func manifest() *v1.SnapshotManifest {
	return &v1.SnapshotManifest{
		ID: "s1", Source: "db", SourceKind: "postgres",
		Meta: map[string]string{"databases": "app,shop"},
		Objects: []v1.SnapshotObject{
			{Name: "app.pgdump", Format: "pgdump"},
			{Name: "_globals.sql", Format: "sql"},
			{Name: "shop.pgdump", Format: "pgdump"},
			{Name: "notes.pgdump", Format: "sql"}, // not a dump of this kind
		},
	}
}

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		name   string
		rename map[string]string
		want   []string
	}{
		{"all under their own names", nil, []string{"app→app d/app.pgdump", "shop→shop d/shop.pgdump"}},
		{"one renamed", map[string]string{"shop": "shop2"}, []string{"shop→shop2 d/shop.pgdump"}},
		{"none", map[string]string{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			jobs, err := pg.Plan("d", manifest(), c.rename)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range jobs {
				got = append(got, fmt.Sprintf("%s→%s %s", j.From, j.To, j.File))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Plan:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	_, err := pg.Plan("d", manifest(), map[string]string{"nope": "x"})
	if want := `snapshot s1 holds no dump of database "nope" (it has: app,shop)`; err == nil || err.Error() != want {
		t.Errorf("Plan of a missing dump: %v; want %s", err, want)
	}
	m := manifest()
	m.SourceKind = "mysql"
	_, err = pg.Plan("d", m, nil)
	if want := "snapshot s1 of source db is a mysql snapshot, not a postgres one"; err == nil || err.Error() != want {
		t.Errorf("Plan of another kind: %v; want %s", err, want)
	}
}
