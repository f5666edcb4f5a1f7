package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hookPolicy is smallPolicy with a before hook that records the niceness
// and the I/O priority it runs with.
func hookPolicy(name, out string) string {
	return smallPolicy(name, "disk") + `  hooks:
    before:
      - shell: true
        command: ["cut -d' ' -f19 /proc/self/stat > ` + out + `.nice; ionice -p $$ > ` + out + `.io"]
`
}

// TestBackupsRunAtLowPriority: run and --once back up at low CPU and I/O
// priority unless --priority normal (or AEGIS_PRIORITY=normal) says
// otherwise; a hook, a child of the agent, has it too.
func TestBackupsRunAtLowPriority(t *testing.T) {
	requireTool(t, "ionice")
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	ownNice := 20 - prio
	if ownNice >= 10 {
		t.Skipf("the test runs at nice %d already", ownNice)
	}
	e := newEnv(t)
	smallTree(t, e)
	out := filepath.Join(e.root, "hook")
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+hookPolicy("p", out))
	check := func(what, wantNice, wantIO string) {
		t.Helper()
		nice, _ := os.ReadFile(out + ".nice")
		io, _ := os.ReadFile(out + ".io")
		if strings.TrimSpace(string(nice)) != wantNice || !strings.HasPrefix(string(io), wantIO) {
			t.Errorf("%s: the hook ran at nice %q, I/O %q; want nice %s, I/O %s", what, nice, io, wantNice, wantIO)
		}
		os.Remove(out + ".nice")
		os.Remove(out + ".io")
	}
	e.run("--once").mustCode(t, 0) // the first run is due
	check("--once", "10", "best-effort: prio 7")
	e.run("run", "p").mustCode(t, 0)
	check("run", "10", "best-effort: prio 7")

	own := strconv.Itoa(ownNice)
	e.run("run", "p", "--priority", "normal").mustCode(t, 0)
	check("run --priority normal", own, "")
	cmd := e.command("run", "p")
	cmd.Env = append(cmd.Env, "AEGIS_PRIORITY=normal")
	runCmd(t, cmd, []string{"run", "p"}).mustCode(t, 0)
	check("AEGIS_PRIORITY=normal run", own, "")

	r := e.run("run", "p", "--priority", "lowest")
	r.mustCode(t, 2)
	if want := "aegis-agent: --priority: \"lowest\" is not low or normal\n"; r.stderr != want {
		t.Errorf("--priority lowest: stderr %q, want %q", r.stderr, want)
	}
}

// TestStallTimeoutFlag: --stall-timeout and its environment twin are
// checked before anything runs.
func TestStallTimeoutFlag(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	r := e.run("run", "p", "--stall-timeout", "soon")
	r.mustCode(t, 2)
	if want := "aegis-agent: --stall-timeout: \"soon\" is not a positive duration such as 2m\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	cmd := e.command("--once")
	cmd.Env = append(cmd.Env, "AEGIS_STALL_TIMEOUT=0s")
	runCmd(t, cmd, []string{"--once"}).mustCode(t, 2)
	e.run("--once", "--stall-timeout", "30s").mustCode(t, 0)
}
