package main

import (
	"fmt"
	"os"
	"time"
)

// testNowEnv sets the agent's clock, for tests only: an RFC 3339 time at
// which the clock starts when the command starts; it then runs at the
// normal rate. Everything that reads the time goes through this clock
// (snapshot IDs and times, schedules, retention), so a test can make
// snapshots "at" past times through the same code production uses.
const testNowEnv = "AEGIS_TEST_NOW"

// agentClock returns the clock AEGIS_TEST_NOW sets, or nil (time.Now).
func agentClock() (func() time.Time, error) {
	v := os.Getenv(testNowEnv)
	if v == "" {
		return nil, nil
	}
	t0, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not an RFC 3339 time", testNowEnv, v)
	}
	start := time.Now()
	return func() time.Time { return t0.Add(time.Since(start)) }, nil
}
