package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Backups at low priority: the niceness and I/O class systemd gives the
// unit (Nice=10, IOSchedulingClass=best-effort, IOSchedulingPriority=7),
// for the setups without it (cron, CI, a shell). Hooks and dump tools
// inherit it.
const (
	lowNice = 10

	ioprioWhoProcess    = 1
	ioprioClassShift    = 13
	ioprioClassBE       = 2
	ioprioClassIdle     = 3
	ioprioLowestBELevel = 7
)

// applyPriority sets the priority --priority asks for: "low" makes every
// thread of the process at least as nice as lowNice and puts its I/O last
// in the best-effort class; "normal" leaves both as they are (a niceness
// set by systemd or nice(1) stays). A priority that cannot be set (a
// sandbox that forbids it) is warned about on stderr: backing up at the
// priority given beats not backing up.
func applyPriority(priority string) error {
	switch priority {
	case "normal":
		return nil
	case "low":
	default:
		return invalid(fmt.Errorf("--priority: %q is not low or normal", priority))
	}
	// Niceness and I/O priority belong to each thread on Linux; threads
	// made later inherit them from the one that makes them. So every
	// thread is lowered, again until no new one appears: then every
	// thread the runtime makes from now on is made by a lowered one.
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		fresh, err := lowerNewThreads(done)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aegis-agent: warning: cannot set a low priority:", err)
			return nil
		}
		if fresh == 0 {
			break
		}
	}
	return nil
}

// lowerNewThreads lowers the threads of the process not in done, and
// tells how many there were.
func lowerNewThreads(done map[int]bool) (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	fresh := 0
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil || done[tid] {
			continue
		}
		if err := lowerThread(tid); err != nil {
			return 0, fmt.Errorf("thread %d: %w", tid, err)
		}
		done[tid] = true
		fresh++
	}
	return fresh, nil
}

func lowerThread(tid int) error {
	// The raw getpriority returns 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err == unix.ESRCH {
		return nil // the thread ended
	}
	if err != nil {
		return err
	}
	if 20-prio < lowNice {
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, lowNice); err != nil && err != unix.ESRCH {
			return err
		}
	}
	cur, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if e == 0 && cur>>ioprioClassShift == ioprioClassIdle {
		return nil // already lower than low
	}
	ioprio := ioprioClassBE<<ioprioClassShift | ioprioLowestBELevel
	if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(ioprio)); e != 0 && e != unix.ESRCH {
		return e
	}
	return nil
}
