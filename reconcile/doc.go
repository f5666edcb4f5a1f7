// Package reconcile is the agent: it reads the manifests of a config
// directory (load.go), decides with a pure planner what is due (plan.go),
// runs it under per-policy locks (agent.go, lock.go), remembers what ran in
// its state store (store.go) and writes each object's status sidecar
// (status.go). The loop is level-triggered: file events, signals and timers
// only mark it dirty; each pass looks at the whole world again.
//
// What a run does lives below: reconcile/snapshot makes, lists, restores and
// verifies snapshots; reconcile/retention decides and prunes what to keep;
// reconcile/observe reports (metrics, audit, notifications, logs, progress).
// This package is the top of the library: nothing in it may be imported by
// those packages, and it must not import cmd/.
package reconcile
