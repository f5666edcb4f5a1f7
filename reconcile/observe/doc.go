// Package observe holds what the agent reports of its work: Prometheus
// metrics, notifications (pings and signed webhooks), the audit trail, the
// rotating log files and run logs, progress, and the build's version.
//
// It sits just above the drivers: it may import api/v1, drivers and
// reconcile/atomicfile, and must not import reconcile, reconcile/snapshot or
// reconcile/retention (they report through it).
package observe
