package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func runAgent(ctx context.Context, g *globals) error {
	log, closeLog, err := g.logger(true)
	if err != nil {
		return err
	}
	defer closeLog()
	if _, err := os.Stat(g.configDir); err != nil {
		return invalid(fmt.Errorf("config directory: %w", err))
	}
	if err := applyPriority(g.priority); err != nil {
		return err
	}
	a, err := g.agent(log)
	if err != nil {
		return err
	}
	defer a.Close() // waits for the notifications in flight
	if err := serveMetrics(ctx, g, a, log); err != nil {
		return err
	}
	if err := serveWeb(ctx, g, a, log); err != nil {
		return err
	}
	if g.once {
		res, err := a.Once(ctx)
		if err != nil {
			return failed(err)
		}
		for name, r := range res.Results {
			log.Info("policy done", "policy", name, "result", r.Result, "snapshot", r.SnapshotID, "duration", r.Duration)
		}
		if len(res.Results) == 0 {
			log.Info("nothing was due")
		}
		if code := res.ExitCode(); code != exitOK {
			return silentExit(code)
		}
		return nil
	}
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := a.Run(ctx, reload); err != nil {
		return failed(err)
	}
	return nil
}
