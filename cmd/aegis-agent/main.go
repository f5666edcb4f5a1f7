// Command aegis-agent backs up Linux servers as its manifests say: it
// watches a directory of BackupPolicy and Destination manifests, runs what
// is due, applies retention and writes each object's status beside it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	// Before Bubble Tea's init: no terminal query outside the guided setup.
	_ "github.com/aegis-backup/aegis/cmd/aegis-agent/internal/termquery"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	drivers.Agent.Version = observe.Build().Version // the User-Agent of S3 requests
	stopProfile := startProfile()
	code := run(ctx, os.Args[1:])
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile to $AEGIS_CPUPROFILE when it is set,
// for performance work (docs/performance.md); it returns the stop function.
func startProfile() func() {
	name := os.Getenv("AEGIS_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "aegis-agent: AEGIS_CPUPROFILE:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "aegis-agent: AEGIS_CPUPROFILE:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// Exit codes of the contract.
const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

// exitError carries an exit code up to main with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func failed(err error) error  { return &exitError{exitFailed, err} }
func invalid(err error) error { return &exitError{exitInvalid, err} }

// silentExit ends with a code after the command printed its own report.
func silentExit(code int) error { return &exitError{code, nil} }

func run(ctx context.Context, args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "aegis-agent:", ee.err)
		}
		return ee.code
	}
	// Cobra's own errors: unknown command or flag, wrong arguments.
	fmt.Fprintln(os.Stderr, "aegis-agent:", err)
	return exitInvalid
}
