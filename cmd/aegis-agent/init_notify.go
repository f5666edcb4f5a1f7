package main

import (
	"slices"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// notifyAnswer is how the user hears about the backups. It becomes policy
// hooks: a ping URL in the healthchecks.io style (URL after a success,
// URL/fail after a failure, so a missed ping raises the alarm even when the
// host is down), and a command run after a failure.
type notifyAnswer struct {
	PingURL   string `json:"pingURL,omitempty"`
	OnFailure string `json:"onFailure,omitempty"`
}

func (n *notifyAnswer) empty() bool { return n == nil || (n.PingURL == "" && n.OnFailure == "") }

// pingHook is the hook that pings url: curl, quiet, bounded in time,
// retried a few times; its failure never hides the backup's result.
func pingHook(url string) v1.Hook {
	return v1.Hook{Command: []string{"curl", "-fsS", "-m", "10", "--retry", "3", "-o", "/dev/null", url}, Timeout: "1m"}
}

// pingURLOf returns the URL a hook pings, if it is a ping hook.
func pingURLOf(h v1.Hook) (string, bool) {
	want := pingHook("").Command
	if h.Shell || len(h.Command) != len(want) || h.Timeout != "1m" {
		return "", false
	}
	if !slices.Equal(h.Command[:len(want)-1], want[:len(want)-1]) {
		return "", false
	}
	return h.Command[len(want)-1], true
}

// applyNotify adds the hooks of n to the policy.
func applyNotify(p *v1.BackupPolicy, n *notifyAnswer) {
	if n.empty() {
		return
	}
	h := &v1.Hooks{}
	if p.Spec.Hooks != nil {
		*h = *p.Spec.Hooks
		h.After = slices.Clone(h.After)
		h.OnFailure = slices.Clone(h.OnFailure)
	}
	if n.PingURL != "" {
		h.After = append(h.After, pingHook(n.PingURL))
		h.OnFailure = append(h.OnFailure, pingHook(n.PingURL+"/fail"))
	}
	if n.OnFailure != "" {
		h.OnFailure = append(h.OnFailure, v1.Hook{Command: []string{n.OnFailure}, Shell: true, Timeout: "1m"})
	}
	p.Spec.Hooks = h
}

// notifyFromPolicy takes the hooks that applyNotify writes back out of the
// policy's hooks (so that a re-run does not add them twice) and returns
// them as answers, and the hooks that remain.
func notifyFromPolicy(hooks *v1.Hooks) (*v1.Hooks, *notifyAnswer) {
	if hooks == nil {
		return nil, nil
	}
	n := &notifyAnswer{}
	rest := *hooks
	rest.After = nil
	for _, h := range hooks.After {
		if u, ok := pingURLOf(h); ok && n.PingURL == "" {
			n.PingURL = u
			continue
		}
		rest.After = append(rest.After, h)
	}
	rest.OnFailure = nil
	for _, h := range hooks.OnFailure {
		if u, ok := pingURLOf(h); ok && n.PingURL != "" && u == n.PingURL+"/fail" {
			continue
		}
		if h.Shell && len(h.Command) == 1 && h.Timeout == "1m" && n.OnFailure == "" {
			n.OnFailure = h.Command[0]
			continue
		}
		rest.OnFailure = append(rest.OnFailure, h)
	}
	var out *v1.Hooks
	if len(rest.Before)+len(rest.After)+len(rest.OnFailure) > 0 {
		out = &rest
	}
	if n.empty() {
		n = nil
	}
	return out, n
}
