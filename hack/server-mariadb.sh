#!/bin/bash
# A MariaDB server of its own for the tests, from the distribution's
# packages, listening on 127.0.0.1 on a free high port and on a unix socket
# in DIR, with its data in DIR. It never touches a system-wide server.
#
#   hack/server-mariadb.sh start DIR   # prints `export VAR=value` lines
#   hack/server-mariadb.sh stop DIR
#
# Exports AEGIS_TEST_MYSQL_HOST, AEGIS_TEST_MYSQL_PORT,
# AEGIS_TEST_MYSQL_SOCKET, AEGIS_TEST_MYSQL_USER (all privileges) and
# AEGIS_TEST_MYSQL_PASSWORD_FILE (its password, mode 0600).
set -euo pipefail

log() { echo "server-mariadb: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[ $# -eq 2 ] || die "usage: $0 start|stop DIR"
cmd=$1
dir=$2

server_bin() {
	local b
	for b in mariadbd mysqld; do
		if command -v "$b" >/dev/null 2>&1; then
			command -v "$b"
			return
		fi
		if [ -x "/usr/sbin/$b" ]; then
			echo "/usr/sbin/$b"
			return
		fi
	done
	return 1
}

install_packages() {
	if server_bin >/dev/null && command -v mariadb >/dev/null && command -v mariadb-dump >/dev/null &&
		command -v mariadb-install-db >/dev/null; then
		return
	fi
	log "installing mariadb-server and mariadb-client"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
	$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
		mariadb-server mariadb-client >&2
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
	install_packages
	local server
	server=$(server_bin) || die "no mariadbd or mysqld"
	id mysql >/dev/null 2>&1 || die "no mysql user: the mariadb-server package creates it"

	mkdir -p "$dir"
	# The server runs as mysql: it must reach DIR (test-env.sh makes its
	# parent private to root) and own its data and run directories.
	# o+x only: never take bits away from a shared directory such as /tmp.
	chmod o+x "$(dirname "$dir")" "$dir"
	local data=$dir/data run=$dir/run secrets=$dir/secrets tmp=$dir/tmp
	mkdir -p "$run" "$secrets" "$tmp"
	chmod 0700 "$secrets"
	chown mysql: "$run" "$tmp"
	local sock=$run/mysqld.sock

	if [ ! -d "$data/mysql" ]; then
		mkdir -p "$data"
		chown mysql: "$data"
		# Its own tmpdir: nothing here depends on /tmp being writable.
		TMPDIR=$tmp mariadb-install-db --no-defaults --datadir="$data" --user=mysql \
			--auth-root-authentication-method=socket --skip-test-db --tmpdir="$tmp" \
			>"$dir/install-db.log" 2>&1 || {
			cat "$dir/install-db.log" >&2
			die "mariadb-install-db failed"
		}
	fi

	local port tries=0 pid
	while :; do
		tries=$((tries + 1))
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		# setsid: the server outlives this script, in a session of its own.
		setsid "$server" --no-defaults --datadir="$data" --user=mysql \
			--socket="$sock" --port="$port" --bind-address=127.0.0.1 \
			--pid-file="$run/mysqld.pid" --log-error="$dir/error.log" --tmpdir="$tmp" \
			--skip-name-resolve --innodb-buffer-pool-size=256M \
			--innodb-flush-log-at-trx-commit=2 --max-allowed-packet=256M \
			</dev/null >/dev/null 2>&1 &
		pid=$!
		local i
		for i in $(seq 1 120); do
			if mariadb-admin --no-defaults --socket="$sock" -u root ping >/dev/null 2>&1; then
				break 2
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill "$pid" 2>/dev/null || true
		[ $tries -lt 5 ] || {
			tail -n 20 "$dir/error.log" >&2 || true
			die "cannot start MariaDB"
		}
	done
	echo "$pid" >"$dir/server.pid"

	local password
	password=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
	printf '%s\n' "$password" >"$secrets/password"
	chmod 0600 "$secrets/password"
	# Through stdin, so that the password is never on a command line.
	mariadb --no-defaults --socket="$sock" -u root <<EOF
CREATE OR REPLACE USER 'aegis'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE OR REPLACE USER 'aegis'@'localhost' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON *.* TO 'aegis'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'aegis'@'localhost' WITH GRANT OPTION;
EOF
	log "$("$server" --version | sed 's/^.*Ver //') on 127.0.0.1:$port and $sock"
	cat <<EOF
export AEGIS_TEST_MYSQL_HOST=127.0.0.1
export AEGIS_TEST_MYSQL_PORT=$port
export AEGIS_TEST_MYSQL_SOCKET=$sock
export AEGIS_TEST_MYSQL_USER=aegis
export AEGIS_TEST_MYSQL_PASSWORD_FILE=$secrets/password
EOF
}

stop() {
	local pid
	[ -f "$dir/server.pid" ] || return 0
	pid=$(cat "$dir/server.pid")
	kill "$pid" 2>/dev/null || return 0
	local i
	for i in $(seq 1 120); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	kill -9 "$pid" 2>/dev/null || true
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop DIR" ;;
esac
