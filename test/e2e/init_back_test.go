package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestInitAccessibleTerminalEnds ends --accessible prompts on a terminal
// with Ctrl+D after an invalid answer to a list, and with Ctrl+C: each
// cancels cleanly, writes nothing, and every prompt showed its default.
func TestInitAccessibleTerminalEnds(t *testing.T) {
	for _, tc := range []struct {
		key, want string
		code      int
	}{
		{"\x04", "standard input ended before the setup was complete: nothing was written.", 2},
		{"\x03", "setup cancelled: nothing was written.", 1},
	} {
		e := newInitEnv(t)
		s := startScreen(t, e.initCmd("--accessible", "--policy", "web"))
		s.expect("Name of this backup policy [web] ")
		s.press("\r")
		s.expect("Destination 1: where should backups go?")
		s.expect("Enter a number between 1 and 10 [1]: ")
		s.press("x\r")
		s.expect("Invalid: must be a number between 1 and 10")
		s.press(tc.key)
		s.expect(tc.want)
		if code := s.wait(); code != tc.code {
			t.Errorf("%q: exit code %d, want %d", tc.key, code, tc.code)
		}
		if strings.Contains(s.text(), "panic") {
			t.Errorf("%q: the program panicked:\n%s", tc.key, s.text())
		}
		if entries, _ := os.ReadDir(e.config); len(entries) != 0 {
			t.Errorf("%q: wrote %d file(s) in %s", tc.key, len(entries), e.config)
		}
	}
}

const (
	keyEsc      = "\x1b"
	keyShiftTab = "\x1b[Z"
	keyCtrlC    = "\x03"
)

// TestInitWizardGoesBack goes back with Esc and Shift+Tab, changes one
// section from the review without going through the others, writes, and
// then cancels an edit with Ctrl+C, which writes nothing.
func TestInitWizardGoesBack(t *testing.T) {
	e := newInitEnv(t)
	src := filepath.Join(e.root, "www")
	os.MkdirAll(src, 0o755)
	backups := filepath.Join(e.root, "backups")
	var (
		mu    sync.Mutex
		pings []string
	)
	monitor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		pings = append(pings, r.URL.Path)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	defer monitor.Close()

	s := startScreen(t, e.initCmd("--policy", "web"))
	s.keep("Name of this backup policy")
	s.choose("Destination 1: where should backups go?", 0, "Local directory")
	s.keep("Name of this destination")
	s.field("Directory for the backups", backups)
	// Esc on a question goes back a screen: from the end of the
	// destinations to the name.
	s.expect("┃ Add another destination?")
	s.press(keyEsc)
	s.keep("Name of this backup policy")
	// The destination answered before is kept.
	s.choose("Destination 1: disk (directory "+backups+")", 0, "Local directory")
	// Esc on the details goes back to the kind.
	s.expect("┃ Name of this destination")
	s.press(keyEsc)
	s.choose("Destination 1: disk (directory "+backups+")", 0, "Local directory")
	s.keep("Name of this destination")
	s.keep("Directory for the backups")
	s.yesNo("Add another destination?", "n")

	s.choose("Source 1: what should be backed up?", 0, "Files and directories")
	s.keep("Name of this source")
	s.field("Paths to back up", src)
	s.keep("Exclude (optional)")
	s.keep("Stay on the file systems of these paths?")
	s.yesNo("Add another source?", "n")
	s.choose("Encryption", 0, "age (recommended)")
	s.choose("age key", 0, "Generate a new key")
	s.yesNo("Will you keep a copy of the key off this server?", "y")
	s.keep("Remove the identity from this host after the setup?") // no
	s.expect("✓ encryption: age, identity " + filepath.Join(e.keys, "web.key"))

	// Shift+Tab on a screen's first field goes back too.
	s.expect("┃ When should backups run?")
	s.press(keyShiftTab)
	s.choose("Encryption", 0, "age (recommended)")
	s.choose("age key", 0, "Keep the current key(s): age1")
	s.choose("When should backups run?", 0, "every hour, on the hour")
	s.field("Time zone of the schedule", "UTC")
	for _, f := range []string{"Hourly", "Daily", "Weekly", "Monthly", "Yearly"} {
		s.keep(f)
	}
	// A ping URL gets a test ping, whose result is shown; a failed one
	// is asked again.
	s.field("Ping URL", monitor.URL+"/missing")
	s.keep("Webhook URL")
	s.keep("Also send the webhook after every successful run?")
	s.expect("✗ test ping to " + monitor.URL + "/…: the monitor answered 404 Not Found: is the URL right?")
	s.expect("The test ping to " + monitor.URL + "/… failed")
	s.field("Ping URL", monitor.URL+"/uuid")
	s.keep("Webhook URL")
	s.keep("Also send the webhook after every successful run?")
	s.expect("✓ test ping to " + monitor.URL + "/…: the monitor got it")

	// The review jumps to one section and comes back to the review.
	s.choose("Write this setup?", 5, "Change the schedule and retention")
	s.choose("When should backups run?", 2, "every day at 02:00")
	s.keep("Time zone of the schedule")
	for _, f := range []string{"Hourly", "Daily", "Weekly", "Monthly", "Yearly"} {
		s.keep(f)
	}
	s.expect(`✓ schedule "0 2 * * *"`)
	before := len(s.text())
	s.choose("Write this setup?", 0, "Write these files")
	if skipped := s.text()[before:]; strings.Contains(skipped, "Ping URL") {
		t.Errorf("the notifications were asked again after changing the schedule from the review")
	}
	s.yesNo("Run a first backup now, and verify it?", "n")
	s.expect("Next steps")
	if code := s.wait(); code != 0 {
		t.Fatalf("init exit code %d", code)
	}
	manifest := readFile(t, filepath.Join(e.config, "web.yaml"))
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(pings, " "); got != "/missing /uuid" {
		t.Errorf("the monitor got pings %q, want /missing then /uuid", got)
	}
	if !strings.Contains(manifest, `schedule: "0 2 * * *"`) || strings.Count(manifest, "kind: Destination") != 1 || !strings.Contains(manifest, monitor.URL+"/uuid") {
		t.Errorf("manifest:\n%s", manifest)
	}

	// Ctrl+C in the middle of an edit writes nothing.
	s = startScreen(t, e.initCmd())
	s.keep("Name of this backup policy")
	s.expect("┃ Destination 1: disk")
	s.press(keyCtrlC)
	s.expect("setup cancelled: nothing was written.")
	if code := s.wait(); code != 1 {
		t.Errorf("exit code after Ctrl+C %d, want 1", code)
	}
	if got := readFile(t, filepath.Join(e.config, "web.yaml")); got != manifest {
		t.Errorf("Ctrl+C changed the manifest:\n%s", got)
	}
}

// TestInitRemovesIdentity removes the generated identity from the host
// at the end of the setup, after the first backup was verified with it:
// the summary and status say so, and restore then needs --identity.
func TestInitRemovesIdentity(t *testing.T) {
	e := newInitEnv(t)
	backups := filepath.Join(e.root, "backups")
	key := filepath.Join(e.keys, "web.key")
	lines := []string{
		"web",                 // policy
		"1", "", backups, "n", // a local destination
		"1", "", e.root, "", "y", "n", // files
		"1", "1", "y", "y", // age, generated, a copy kept, remove it
		"1", "UTC", "", "", "", "", "", // hourly, retention as proposed
		"", "", "n", // no notifications
		"1", "y", // write, first backup
		"y", // the copy is safe: remove
	}
	cmd := e.initCmd("--accessible")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("init --accessible: %v\n%s", err, out)
	}
	for _, want := range []string{
		"✓ encryption: age, identity " + key + " (removed from this host after the setup)",
		"The age identity " + key + " is removed from this host at the end, once you\nconfirm your copy: restore and verify then need --identity FILE.",
		"✓ first backup stored and verified",
		"✓ the identity is removed from this host: restore and verify need --identity FILE with your copy",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatalf("%s is still there (%v)", key, err)
	}
	res := e.run("status")
	if !strings.Contains(res.stdout, "identity of web: not on this host: restore and verify need --identity FILE") {
		t.Errorf("status:\n%s", res.stdout)
	}
	if res := e.run("restore", "web", "--target", filepath.Join(e.root, "restore")); res.code == 0 {
		t.Errorf("restore without --identity succeeded after the identity was removed:\n%s", res.stdout)
	}
}

// TestInitAccessibleInterruptsPassword: Ctrl+C at a password prompt of
// --accessible mode, which reads the terminal itself, cancels too, and
// gives the terminal its echo back.
func TestInitAccessibleInterruptsPassword(t *testing.T) {
	e := newInitEnv(t)
	s := startScreen(t, e.initCmd("--accessible", "--policy", "web"))
	s.expect("Name of this backup policy [web] ")
	s.press("\r")
	s.expect("Enter a number between 1 and 10 [1]: ")
	s.press("2\r") // Amazon S3
	s.expect("Name of this destination [aws] ")
	s.press("\r")
	s.expect("Region [us-east-1] ")
	s.press("\r")
	s.expect("Endpoint URL ")
	s.press("\r")
	s.expect("Bucket ")
	s.press("backups-1\r")
	s.expect("Prefix inside the bucket (optional) ")
	s.press("\r")
	s.expect("Access key ID ")
	s.press("AKIAEXAMPLE\r")
	s.expect("Secret access key ")
	s.press(keyCtrlC)
	s.expect("setup cancelled: nothing was written.")
	if code := s.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if entries, _ := os.ReadDir(e.config); len(entries) != 0 {
		t.Errorf("wrote %d file(s) in %s", len(entries), e.config)
	}
}
