package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestOneSizeEverywhere: status, snapshots and verify give one snapshot the
// same size: its stored bytes, everything in its directory on the
// destination.
func TestOneSizeEverywhere(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	// Enough data for KiB, and more than one file in the snapshot's
	// directory to add up.
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i * 7919 % 251)
	}
	os.WriteFile(filepath.Join(e.root, "src", "big.bin"), big, 0o644)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	e.run("run", "p").mustCode(t, 0)

	var stored int64
	dirs := manifestsUnder(t, filepath.Join(e.root, "backups"))
	if len(dirs) != 1 {
		t.Fatalf("snapshots: %v", dirs)
	}
	entries, _ := os.ReadDir(filepath.Dir(dirs[0]))
	for _, en := range entries {
		fi, _ := en.Info()
		stored += fi.Size()
	}
	want := humanSize(stored)

	status := e.run("status")
	status.mustCode(t, 0)
	snaps := e.run("snapshots")
	snaps.mustCode(t, 0)
	verify := e.run("verify", "p", "--identity", e.identity)
	verify.mustCode(t, 0)
	for _, c := range []struct{ what, out, pattern string }{
		{"status", status.stdout, `(?m)^p +OK .*  ` + regexp.QuoteMeta(want) + `  +1/1$`},
		{"snapshots", snaps.stdout, `(?m) files +disk +\d+ +` + regexp.QuoteMeta(want) + `$`},
		{"verify", verify.stdout, `(?m)^ok   p/files \S+ on disk: 1 object\(s\), ` + regexp.QuoteMeta(want) + ` stored$`},
	} {
		if !regexp.MustCompile(c.pattern).MatchString(c.out) {
			t.Errorf("%s does not show the %d stored bytes as %s:\n%s", c.what, stored, want, c.out)
		}
	}
	if js := e.snapshots("p"); len(js) != 1 || js[0].Size != stored {
		t.Errorf("snapshots --json: %+v, want size %d", js, stored)
	}
}

// humanSize is how Aegis prints sizes, written out again here so that the
// test does not trust the code under test: binary units, one decimal.
func humanSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, units := float64(n)/1024, "KMGTPE"
	i := 0
	for v >= 1024 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + string(units[i]) + "iB"
}
