#!/bin/sh
# Starts every test server on 127.0.0.1 (each hack/server-*.sh), runs the
# given command with the variables they export, then stops them.
#
#   ./hack/test-env.sh go test ./...
#
# Each hack/server-NAME.sh takes `start DIR` (install what is missing, start
# the server with its state under DIR, print `export VAR=value` lines on
# stdout, log to stderr) and `stop DIR`. Servers use high ports and temp
# directories and never listen on anything but loopback.
set -eu
cd "$(dirname "$0")/.."
STATE=$(mktemp -d "${TMPDIR:-/tmp}/aegis-test-env.XXXXXX")
ENVFILE="$STATE/env.sh"
: > "$ENVFILE"
# The command's temporary files (t.TempDir, os.MkdirTemp("", ...)) go under
# STATE, not straight into the shared /tmp: tests start private servers in
# such directories, and the server scripts open up the parent directory for
# the servers' users, which must never be /tmp itself. go+rx on STATE lets
# those users (and tests that drop to nobody) through; what is secret in it
# has its own 0600/0700 modes.
chmod go+rx "$STATE"
mkdir -p "$STATE/tmp"
chmod 1777 "$STATE/tmp"

stop_all() {
	for s in hack/server-*.sh; do
		[ -e "$s" ] || continue
		"./$s" stop "$STATE/$(basename "$s" .sh)" >/dev/null 2>&1 || true
	done
	rm -rf "$STATE"
}
trap stop_all EXIT INT TERM

for s in hack/server-*.sh; do
	[ -e "$s" ] || continue
	name=$(basename "$s" .sh)
	mkdir -p "$STATE/$name"
	echo "test-env: starting ${name#server-}" >&2
	if ! "./$s" start "$STATE/$name" >> "$ENVFILE"; then
		echo "test-env: ${name#server-} failed to start" >&2
		[ "${CI:-}" = "true" ] && exit 1
	fi
done
# shellcheck disable=SC1090
. "$ENVFILE"
TMPDIR="$STATE/tmp" "$@"
