package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// policyLock is an exclusive lock on one policy, held across processes
// through flock(2) on a file under the state directory. The kernel drops it
// when the process dies, so a crash leaves no stale lock.
type policyLock struct {
	f *os.File
}

// lockPolicy takes the lock of policy. With wait it blocks until the lock is
// free or ctx is done; without it, a held lock is an error that says who
// holds it.
func lockPolicy(ctx context.Context, stateDir, policy string, wait bool) (*policyLock, error) {
	dir := filepath.Join(stateDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	name := filepath.Join(dir, policy+".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if !wait {
			holder, _ := os.ReadFile(name)
			f.Close()
			return nil, fmt.Errorf("policy %s is already running (%s); try again when it has finished: %w",
				policy, strings.TrimSpace(string(holder)), errLocked)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Say who holds it, for the message another process shows.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d since %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339))), 0)
	return &policyLock{f: f}, nil
}

func (l *policyLock) unlock() {
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}
