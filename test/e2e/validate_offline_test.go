package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateOffline: in GitOps CI the keys and secrets named by the
// manifests are not on the machine. validate says so; validate --offline
// checks everything else and passes, and still catches a bad reference.
func TestValidateOffline(t *testing.T) {
	e := newEnv(t)
	missing := filepath.Join(e.root, "not-here", "openssl.key")
	policy := strings.ReplaceAll(smallPolicy("p", "disk"), "encryption:\n    age:\n      recipients: [\"@RECIPIENT@\"]",
		"encryption:\n    openssl:\n      keyFile: "+missing)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+policy)

	res := e.run("validate")
	res.mustCode(t, 2)
	if !strings.Contains(res.stdout, missing) {
		t.Errorf("validate does not name the missing key file:\n%s", res.stdout)
	}
	res = e.run("validate", "--offline")
	res.mustCode(t, 0)

	// A reference to a destination that does not exist is caught offline.
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+strings.Replace(policy, "[disk]", "[nowhere]", 1))
	res = e.run("validate", "--offline")
	res.mustCode(t, 2)
	if !strings.Contains(res.stdout, "nowhere") {
		t.Errorf("validate --offline does not name the missing destination:\n%s", res.stdout)
	}
}
