package termquery

import "testing"

func TestWizardRequested(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"validate"}, false},
		{[]string{"status", "--json"}, false},
		{[]string{"--once"}, false},
		{[]string{"init"}, true},
		{[]string{"--config-dir", "/tmp/c", "init", "--policy", "web"}, true},
		{[]string{"init", "--accessible"}, true},
		{[]string{"init", "--non-interactive", "--policy", "web"}, false},
		{[]string{"init", "--non-interactive=true"}, false},
		{[]string{"init", "--dry-run"}, false},
		{[]string{"init", "--help"}, false},
		{[]string{"help", "init"}, true},
		{[]string{"run", "--", "init"}, false},
	} {
		if got := WizardRequested(c.args); got != c.want {
			t.Errorf("WizardRequested(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
