package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestManPages: one page per command, titled with its own name, that man
// renders without a warning; init's syntax block stays as written; no page
// for a completion that make install does not install.
func TestManPages(t *testing.T) {
	manBin := requireTool(t, "man")
	dir := filepath.Join(t.TempDir(), "man1")
	if out, err := exec.Command(agentBin, "man", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("aegis-agent man: %v\n%s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(pages) < 15 {
		t.Fatalf("only %d pages: %v", len(pages), pages)
	}
	for _, page := range pages {
		name := strings.TrimSuffix(filepath.Base(page), ".1")
		if strings.Contains(name, "powershell") {
			t.Errorf("%s documents a completion make install does not install", page)
		}
		body := readFile(t, page)
		if want := `.TH "` + strings.ToUpper(name) + `" "1"`; !strings.Contains(body, want) {
			t.Errorf("%s is not titled %s:\n%.200s", name, strings.ToUpper(name), body)
		}
		cmd := exec.Command(manBin, "--warnings", "-l", page)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "LC_ALL=C.UTF-8", "MANPAGER=cat", "PAGER=cat")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", name, err, stderr.String())
		}
	}
	cmd := exec.Command(manBin, "-l", filepath.Join(dir, "aegis-agent-init.1"))
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "LC_ALL=C.UTF-8", "MANPAGER=cat", "PAGER=cat")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`--destination type=local,path=DIR[,name=NAME]`,
		`--destination type=s3,provider=aws|b2|gcs|wasabi|digitalocean|minio|other,bucket=B,`,
		`              region=R,endpoint=URL,prefix=P,storage-class=C,credentials-file=F`,
		`--source type=system,extra-path=P`,
	} {
		if !regexp.MustCompile(`(?m)^ +` + regexp.QuoteMeta(line) + `$`).Match(out) {
			t.Errorf("aegis-agent-init(1) does not keep the line %q:\n%s", line, out)
		}
	}
}

// TestCompletionOfNamesAndValues: completion offers the policies and
// destinations of the config directory, a policy's sources, and the values
// of flags that take one of a few words.
func TestCompletionOfNamesAndValues(t *testing.T) {
	e := newEnv(t)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+destination("offsite", "@ROOT@/offsite")+"---\n"+smallPolicy("p", "disk"))
	e.write("q.yaml", smallPolicy("q", "offsite"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", ""}, "p\nq\n"},
		{[]string{"restore", ""}, "p\nq\n"},
		{[]string{"snapshots", "--destination", ""}, "disk\noffsite\n"},
		{[]string{"restore", "p", "--from", ""}, "disk\noffsite\n"},
		{[]string{"restore", "p", "--source", ""}, "files\n"},
		{[]string{"init", "--encryption", ""}, "age\nopenssl\nnone\n"},
		{[]string{"status", "--log-level", ""}, "debug\ninfo\nwarn\nerror\n"},
		{[]string{"--priority", ""}, "low\nnormal\n"},
	} {
		r := e.run(append([]string{"__complete"}, c.args...)...)
		r.mustCode(t, 0)
		got, _, _ := strings.Cut(r.stdout, ":")
		if got != c.want {
			t.Errorf("completing %q offers %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
}

// TestMakeInstallPrefix: make install PREFIX=/usr installs a unit that
// starts the binary it installed.
func TestMakeInstallPrefix(t *testing.T) {
	makeBin := requireTool(t, "make")
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	cmd := exec.Command(makeBin, "install", "PREFIX=/usr", "DESTDIR="+dest, "BIN="+filepath.Join(tmp, "aegis-agent"))
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dest, "usr", "bin", "aegis-agent")); err != nil {
		t.Errorf("binary: %v", err)
	}
	unit := readFile(t, filepath.Join(dest, "etc", "systemd", "system", "aegis-agent.service"))
	if !strings.Contains(unit, "\nExecStart=/usr/bin/aegis-agent --log-format json\n") || strings.Contains(unit, "/usr/local") {
		t.Errorf("the unit installed does not start /usr/bin/aegis-agent:\n%s", unit)
	}
	pages, _ := filepath.Glob(filepath.Join(dest, "usr", "share", "man", "man1", "*powershell*"))
	if len(pages) > 0 {
		t.Errorf("pages of completions not installed: %v", pages)
	}
	if _, err := os.Stat(filepath.Join(dest, "usr", "share", "bash-completion", "completions", "aegis-agent")); err != nil {
		t.Errorf("bash completion: %v", err)
	}
}
