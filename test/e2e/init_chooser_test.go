package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestInitChooserShowsPolicies: with several policies, the chooser shows
// them all at once, proposing the one edited last.
func TestInitChooserShowsPolicies(t *testing.T) {
	e := newInitEnv(t)
	src := filepath.Join(e.root, "www")
	os.MkdirAll(src, 0o755)
	for _, p := range []string{"db", "web", "app"} {
		cmd := e.initCmd("--non-interactive", "--policy", p, "--destination", "type=local,name="+p+",path="+filepath.Join(e.root, "b-"+p),
			"--source", "type=files,path="+src, "--encryption", "none")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init %s: %v\n%s", p, err, out)
		}
	}
	// web was edited last.
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{"db", "app"} {
		os.Chtimes(filepath.Join(e.config, p+".yaml"), old, old)
	}
	s := startScreen(t, e.initCmd())
	s.expect("┃ This host has several backup policies")
	s.expect("> Edit policy web (edited last)")
	s.expect("Edit policy app")
	s.expect("Edit policy db")
	s.expect("Set up a new policy")
	// There is no screen before this one: Esc leaves it where it is.
	s.press(keyEsc)
	s.expect("┃ This host has several backup policies")
	s.expect("> Edit policy web (edited last)")
	s.press(keyEnter)
	s.expect("Editing policy web from " + filepath.Join(e.config, "web.yaml"))
	s.press(keyCtrlC)
	s.expect("setup cancelled: nothing was written.")
	s.wait()
}
