#!/bin/bash
# A PostgreSQL server of its own for the tests, from the distribution's
# packages, listening on 127.0.0.1 on a free high port and on a unix socket
# in DIR, with its data in DIR. It never touches a system-wide cluster.
#
#   hack/server-postgres.sh start DIR   # prints `export VAR=value` lines
#   hack/server-postgres.sh stop DIR
#
# Exports AEGIS_TEST_PG_HOST, AEGIS_TEST_PG_PORT, AEGIS_TEST_PG_SOCKET_DIR,
# AEGIS_TEST_PG_USER (a superuser) and AEGIS_TEST_PG_PASSWORD_FILE (its
# password, mode 0600). PostgreSQL refuses to run as root: the server runs as
# the postgres user the package creates.
set -euo pipefail

log() { echo "server-postgres: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[ $# -eq 2 ] || die "usage: $0 start|stop DIR"
cmd=$1
dir=$2

bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install_packages() {
	if bindir >/dev/null && command -v pg_dump >/dev/null && command -v pgbench >/dev/null; then
		return
	fi
	log "installing postgresql"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	# Other installs may hold the dpkg lock for a while; wait for it.
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
	# policy-rc.d keeps the package's own cluster from starting where it can.
	$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
		postgresql postgresql-contrib postgresql-client >&2
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

as_postgres() {
	if [ "$(id -un)" = postgres ]; then
		"$@"
	elif [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		sudo -u postgres "$@"
	fi
}

start() {
	install_packages
	local bin
	bin=$(bindir) || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
	id postgres >/dev/null 2>&1 || die "no postgres user: the postgresql package creates it"

	mkdir -p "$dir"
	# The server runs as postgres: it must reach DIR (test-env.sh makes its
	# parent private to root), and own its data and socket directories.
	# o+x only: never take bits away from a shared directory such as /tmp.
	chmod o+x "$(dirname "$dir")" "$dir"
	local data=$dir/data sock=$dir/sock secrets=$dir/secrets logs=$dir/log
	mkdir -p "$sock" "$secrets" "$logs"
	chmod 0700 "$secrets"
	chown postgres: "$sock" "$logs"
	if [ ! -s "$secrets/password" ]; then
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$secrets/password")
	fi
	chmod 0600 "$secrets/password"
	local password
	password=$(cat "$secrets/password")

	if [ ! -s "$data/PG_VERSION" ]; then
		mkdir -p "$data"
		chown postgres: "$data"
		chmod 0700 "$data"
		local pw=$dir/initdb-password
		(umask 077 && printf '%s\n' "$password" >"$pw")
		chown postgres: "$pw"
		as_postgres "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 \
			--pwfile="$pw" -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
			{
				rm -f "$pw"
				cat "$dir/initdb.log" >&2
				die "initdb failed"
			}
		rm -f "$pw"
		cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = 100
shared_buffers = 256MB
# A throwaway test server: durability does not matter, speed does.
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
	fi

	local port tries=0
	while :; do
		tries=$((tries + 1))
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		if as_postgres "$bin/pg_ctl" -D "$data" -l "$logs/server.log" -w -t 60 \
			-o "-p $port" start >&2; then
			break
		fi
		[ $tries -lt 5 ] || {
			tail -n 20 "$logs/server.log" >&2 || true
			die "cannot start PostgreSQL"
		}
	done
	echo "$port" >"$dir/port"
	log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port and $sock"
	cat <<EOF
export AEGIS_TEST_PG_HOST=127.0.0.1
export AEGIS_TEST_PG_PORT=$port
export AEGIS_TEST_PG_SOCKET_DIR=$sock
export AEGIS_TEST_PG_USER=postgres
export AEGIS_TEST_PG_PASSWORD_FILE=$secrets/password
EOF
}

stop() {
	local bin
	bin=$(bindir) || return 0
	[ -f "$dir/data/postmaster.pid" ] || return 0
	as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || true
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop DIR" ;;
esac
