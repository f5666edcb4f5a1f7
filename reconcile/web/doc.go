// Package web is the agent's web console: server-rendered pages of one
// host's policies, runs, snapshots, audit trail and log, its actions (run
// now, verify, prune, restore), and the fleet view of every host that
// writes to a destination (reconcile.HostStatus objects).
//
// Security comes first: users with bcrypt password hashes in a file of
// mode 0600, sessions in Secure, HttpOnly, SameSite=Strict cookies, a CSRF
// token on every action (POST only), login rate limiting, a strict
// Content-Security-Policy (scripts are files, never inline), and a viewer
// role that changes nothing. Listen refuses an address other than loopback
// unless TLS and authentication are set. No page shows a secret: manifests
// name key and secret files by path, and anything that looks like a
// credential (a URL's user information) is redacted.
//
// It sits above reconcile (it drives an Agent and reads its state, config
// and logs) and below cmd/.
package web
