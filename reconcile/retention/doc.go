// Package retention decides which snapshots to keep (a pure function of
// the snapshots' times and the rules, restic's semantics: docs/retention.md)
// and prunes a destination accordingly: scan, plan, then delete, manifest
// first, with a journal.
//
// It may import api/v1, drivers, reconcile/observe and reconcile/snapshot
// (to read manifests); it must not import reconcile.
package retention
