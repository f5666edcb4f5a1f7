package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// Hooks run around a policy's run and around each of its sources:
//
//   - before: in order, before the run (or the source). The first that
//     fails (non-zero exit, timeout, cannot start) stops the others and
//     skips the run (or the source), which is recorded as Failed with
//     "skipped: ..." in its error; then the onFailure hooks run.
//   - after: after the run (or the source), whatever its result, when the
//     before hooks succeeded, so that they can undo what before did
//     (AEGIS_RESULT tells the result).
//   - onFailure: when the run (or the source) did not succeed, after the
//     after hooks (AEGIS_ERROR holds the error).
//
// A hook runs without a shell, its command being the program and its
// arguments, unless shell is set: then its words, joined with spaces, are
// the script of /bin/sh -c. Its standard input is empty; its output goes
// to the run's log, line by line (bounded). It gets the agent's
// environment plus AEGIS_POLICY, AEGIS_SOURCE (source hooks), AEGIS_HOOK
// (before, after or onFailure), and for after and onFailure
// AEGIS_SNAPSHOT_ID and AEGIS_RESULT. Each hook has its timeout (default
// 5m); on timeout its whole process group is killed. after and onFailure
// hooks run even when the run is being cancelled, so that what before did
// is undone. A failing after or onFailure hook is logged and added to the
// warnings of the sources concerned; the result stays as it is, since the
// backup itself is good.

// Hook phases, as AEGIS_HOOK says them.
const (
	hookBefore    = "before"
	hookAfter     = "after"
	hookOnFailure = "onFailure"
)

const (
	// maxHookLines bounds the lines of one hook's output in the log.
	maxHookLines = 1000
	// maxHookLine bounds one logged line.
	maxHookLine = 2000
	// maxHookError bounds the output quoted in a hook's error.
	maxHookError = 1000
	// hookKillGrace is how long a killed hook's pipes may stay open.
	hookKillGrace = 5 * time.Second
)

func hasHooks(h *v1.Hooks) bool {
	return h != nil && len(h.Before)+len(h.After)+len(h.OnFailure) > 0
}

// hookEnv is the environment a set of hooks gets.
type hookEnv struct {
	policy, source, snapshot, result, err string
}

func (e hookEnv) vars(phase string) []string {
	vars := []string{"AEGIS_POLICY=" + e.policy, "AEGIS_HOOK=" + phase}
	if e.source != "" {
		vars = append(vars, "AEGIS_SOURCE="+e.source)
	}
	if phase != hookBefore {
		vars = append(vars, "AEGIS_SNAPSHOT_ID="+e.snapshot, "AEGIS_RESULT="+e.result)
	}
	if phase == hookOnFailure {
		vars = append(vars, "AEGIS_ERROR="+truncate(e.err, 4000))
	}
	return vars
}

// runHooks runs the hooks of one phase in order and returns the error of
// the first that fails. who names them in logs and errors ("policy web",
// "source db").
func runHooks(ctx context.Context, log *slog.Logger, who, phase string, hooks []v1.Hook, env hookEnv) error {
	for i, h := range hooks {
		name := fmt.Sprintf("%s hook %s[%d]", who, phase, i)
		if err := runHook(ctx, log, name, h, env.vars(phase)); err != nil {
			log.Error("hook failed", "hook", name, "err", err)
			return err
		}
	}
	return nil
}

// runHook runs one hook and returns an error that names it, says how it
// ended and quotes the end of what it said.
func runHook(ctx context.Context, log *slog.Logger, name string, h v1.Hook, env []string) error {
	timeout := v1.DefaultHookTimeout
	if h.Timeout != "" {
		d, err := time.ParseDuration(h.Timeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: invalid timeout %q", name, h.Timeout)
		}
		timeout = d
	}
	if len(h.Command) == 0 || h.Command[0] == "" {
		return fmt.Errorf("%s: no command", name)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var cmd *exec.Cmd
	if h.Shell {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", strings.Join(h.Command, " "))
	} else {
		cmd = exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	}
	// A process group of its own, so that a timeout also ends what the
	// hook started (a shell's children).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = hookKillGrace
	cmd.Env = append(os.Environ(), env...)
	out := &hookOutput{log: log, hook: name}
	cmd.Stdout = out.stream("stdout")
	cmd.Stderr = out.stream("stderr")

	log.Info("hook started", "hook", name, "command", h.Command, "shell", h.Shell)
	t0 := time.Now()
	err := cmd.Run()
	out.flush()
	took := time.Since(t0).Round(time.Millisecond)
	if err == nil {
		log.Info("hook finished", "hook", name, "took", took)
		return nil
	}
	how := err.Error()
	var ee *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		how = fmt.Sprintf("timed out after %s", timeout)
	case errors.As(err, &ee):
		how = ee.ProcessState.String()
	}
	if said := out.tail(); said != "" {
		return fmt.Errorf("%s %q failed (%s): %s", name, strings.Join(h.Command, " "), how, said)
	}
	return fmt.Errorf("%s %q failed (%s)", name, strings.Join(h.Command, " "), how)
}

// hookOutput logs a hook's output line by line and keeps its end for the
// error.
type hookOutput struct {
	log  *slog.Logger
	hook string

	mu      sync.Mutex
	lines   int
	dropped int
	last    []byte // the end of all output, for the error
	lastErr []byte // the end of stderr
	partial map[string][]byte
}

type hookStream struct {
	o    *hookOutput
	name string
}

func (o *hookOutput) stream(name string) *hookStream { return &hookStream{o: o, name: name} }

func (s *hookStream) Write(p []byte) (int, error) {
	o := s.o
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last = keepEnd(append(o.last, p...), maxHookError)
	if s.name == "stderr" {
		o.lastErr = keepEnd(append(o.lastErr, p...), maxHookError)
	}
	if o.partial == nil {
		o.partial = map[string][]byte{}
	}
	buf := append(o.partial[s.name], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		o.emit(s.name, buf[:i])
		buf = buf[i+1:]
	}
	if len(buf) > maxHookLine {
		o.emit(s.name, buf)
		buf = nil
	}
	o.partial[s.name] = append([]byte(nil), buf...)
	return len(p), nil
}

func (o *hookOutput) emit(stream string, line []byte) {
	if o.lines >= maxHookLines {
		o.dropped++
		return
	}
	o.lines++
	o.log.Info("hook output", "hook", o.hook, "stream", stream, "line", truncate(string(bytes.TrimRight(line, "\r")), maxHookLine))
}

func (o *hookOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, stream := range []string{"stdout", "stderr"} {
		if b := o.partial[stream]; len(b) > 0 {
			o.emit(stream, b)
		}
	}
	o.partial = nil
	if o.dropped > 0 {
		o.log.Info("hook output", "hook", o.hook, "stream", "aegis", "line", fmt.Sprintf("... %d more lines not logged", o.dropped))
	}
}

// tail is what the error quotes: the end of stderr, or of all output.
func (o *hookOutput) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := strings.TrimSpace(string(o.lastErr))
	if t == "" {
		t = strings.TrimSpace(string(o.last))
	}
	return t
}

func keepEnd(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append(b[:0:0], b[len(b)-n:]...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// backupWithHooks runs the policy's hooks around run, which does the
// backup itself.
func (r *Runner) backupWithHooks(ctx context.Context, log *slog.Logger, req BackupRequest, run func() *v1.RunResult) *v1.RunResult {
	p := req.Policy
	h := p.Spec.Hooks
	if !hasHooks(h) {
		return run()
	}
	who := "policy " + p.Metadata.Name
	env := hookEnv{policy: p.Metadata.Name}
	start := r.Now()
	if err := runHooks(ctx, log, who, hookBefore, h.Before, env); err != nil {
		msg := "skipped: " + err.Error()
		res := &v1.RunResult{StartTime: start, Result: v1.ResultFailed}
		for _, s := range p.Spec.Sources {
			if req.Source == "" || s.Name == req.Source {
				res.Sources = append(res.Sources, v1.SourceResult{Name: s.Name, Result: v1.ResultFailed, Error: msg, Duration: "0s"})
			}
		}
		env.result, env.err = v1.ResultFailed, msg
		if herr := runHooks(context.WithoutCancel(ctx), log, who, hookOnFailure, h.OnFailure, env); herr != nil {
			addWarning(res.Sources, herr.Error())
		}
		res.Duration = r.Now().Sub(start).Round(time.Millisecond).String()
		log.Warn("backup skipped: a before hook failed", "policy", p.Metadata.Name, "err", err)
		return res
	}
	res := run()
	env.snapshot, env.result = res.SnapshotID, res.Result
	// Undo what before did even when the run is being cancelled.
	hctx := context.WithoutCancel(ctx)
	if err := runHooks(hctx, log, who, hookAfter, h.After, env); err != nil {
		addWarning(res.Sources, err.Error())
	}
	if res.Result != v1.ResultSucceeded {
		env.err = observe.RunErrors(res)
		if err := runHooks(hctx, log, who, hookOnFailure, h.OnFailure, env); err != nil {
			addWarning(res.Sources, err.Error())
		}
	}
	return res
}

// sourceWithHooks runs a source's hooks around run, which backs it up.
func (r *Runner) sourceWithHooks(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, id string, src v1.Source, run func() (v1.SourceResult, []*target)) (v1.SourceResult, []*target) {
	h := src.Hooks
	if !hasHooks(h) {
		return run()
	}
	who := "source " + src.Name
	env := hookEnv{policy: p.Metadata.Name, source: src.Name, snapshot: id}
	if err := runHooks(ctx, log, who, hookBefore, h.Before, env); err != nil {
		sr := v1.SourceResult{Name: src.Name, Result: v1.ResultFailed, Error: "skipped: " + err.Error(), Duration: "0s"}
		env.result, env.err = v1.ResultFailed, sr.Error
		if herr := runHooks(context.WithoutCancel(ctx), log, who, hookOnFailure, h.OnFailure, env); herr != nil {
			sr.Warnings = append(sr.Warnings, herr.Error())
		}
		return sr, nil
	}
	sr, targets := run()
	env.result, env.err = sr.Result, sr.Error
	hctx := context.WithoutCancel(ctx)
	if err := runHooks(hctx, log, who, hookAfter, h.After, env); err != nil {
		sr.Warnings = append(sr.Warnings, err.Error())
	}
	if sr.Result != v1.ResultSucceeded {
		if err := runHooks(hctx, log, who, hookOnFailure, h.OnFailure, env); err != nil {
			sr.Warnings = append(sr.Warnings, err.Error())
		}
	}
	return sr, targets
}

func addWarning(srcs []v1.SourceResult, w string) {
	for i := range srcs {
		srcs[i].Warnings = append(srcs[i].Warnings, w)
	}
}
