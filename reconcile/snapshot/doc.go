// Package snapshot makes and reads snapshots: the backup runner and its
// streaming pipeline (sources → compression → encryption → every
// destination, with bounded asynchronous stages), hooks, the codecs (age,
// openssl, zstd, gzip), keys and key rings, and listing, selecting,
// restoring and verifying snapshots. docs/format.md is the contract of what
// it writes.
//
// It may import api/v1, drivers (and drivers/registry) and reconcile/observe;
// it must not import reconcile or reconcile/retention.
package snapshot
