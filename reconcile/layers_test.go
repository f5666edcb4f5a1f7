package reconcile

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// layers ranks the packages of Aegis: a package may import only packages
// of a lower rank (docs/architecture.md draws the same picture). A package
// missing here fails the test, so a new one gets a place on purpose.
var layers = map[string]int{
	"api/v1":                             0,
	"reconcile/atomicfile":               0,
	"test/testenv":                       0,
	"drivers":                            10,
	"drivers/retry":                      20,
	"drivers/internal/dumptool":          20,
	"drivers/internal/dbtest":            20,
	"drivers/files":                      20,
	"drivers/local":                      20,
	"drivers/internal/dbload":            25,
	"drivers/s3":                         30,
	"drivers/sftp":                       30,
	"drivers/ftp":                        30,
	"drivers/postgres":                   30,
	"drivers/mysql":                      30,
	"drivers/docker":                     30,
	"drivers/system":                     30,
	"drivers/registry":                   40,
	"drivers/drivertest":                 40,
	"reconcile/observe":                  50,
	"reconcile/dedup":                    55,
	"drivers/ratelimit":                  20,
	"reconcile/snapshot":                 60,
	"reconcile/retention":                70,
	"reconcile":                          80,
	"drivers/drivertest/benchtest":       90,
	"cmd/aegis-agent/internal/termquery": 0,
	"cmd/aegis-agent/internal/setup":     95,
	"cmd/aegis-agent":                    100,
	"test/e2e":                           110,
	"reconcile/drill":                    75,
	"reconcile/web":                      85,
}

// TestImportLayers fails when a package imports one of the same or a
// higher layer: the command layer stays on top, the agent loop above what
// it runs, the drivers below everything that uses them.
func TestImportLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/aegis-backup/aegis/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/aegis-backup/aegis/"
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, mod)
		rank, ok := rankOf(name)
		if !ok {
			t.Errorf("package %s has no layer in layers_test.go: give it one", name)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			r, ok := rankOf(dep)
			if ok && r >= rank && dep != name {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go down the layers only", name, rank, dep, r)
			}
		}
	}
}

// rankOf finds the layer of a package. Every package is listed by its
// full path, so a new one never inherits a parent's place by accident.
func rankOf(name string) (int, bool) {
	r, ok := layers[name]
	return r, ok
}
