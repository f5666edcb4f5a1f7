// Package drill runs restore drills: it proves that a policy's newest
// snapshots come back. Files, system and Docker volume sources are
// restored into scratch space under the state directory, every file hashed
// and checked against its tar header, a sample written to disk, read back
// and compared with the live files that have not changed since the
// snapshot. Database sources are loaded into a temporary database (a
// reserved name prefix plus a random suffix, refused if it exists), their
// tables and row counts compared with what the dump holds, the policy's
// checks run, and the database dropped, also on failure. A drill reads
// from the destinations through a wrapper that refuses every write, and
// leaves a JSON report as evidence. A journal in the state directory lets
// the next start remove what a drill cut short left behind.
//
// It may import api/v1, drivers (and the database drivers),
// reconcile/observe and reconcile/snapshot; it must not import reconcile
// or reconcile/retention.
package drill
