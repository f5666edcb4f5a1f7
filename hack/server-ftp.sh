#!/bin/bash
# FTP and FTPS servers of their own for the tests: the distribution's
# vsftpd, twice, with configs, a self-signed certificate and data under DIR,
# on 127.0.0.1 on free high ports, in passive mode, for one unprivileged test
# user. One server speaks plain FTP and explicit TLS (AUTH TLS) on the same
# port, the other implicit TLS. It never touches the system's vsftpd.
#
#   hack/server-ftp.sh start DIR   # prints `export VAR=value` lines
#   hack/server-ftp.sh stop DIR
#   hack/server-ftp.sh kill DIR    # SIGKILLs both servers and their
#                                  # sessions, keeping DIR: a later
#                                  # `start DIR` brings them back on the
#                                  # same ports with the same certificate
#
# Exports AEGIS_TEST_FTP_HOST, AEGIS_TEST_FTP_PORT (plain and explicit TLS),
# AEGIS_TEST_FTP_IMPLICIT_PORT, AEGIS_TEST_FTP_USER,
# AEGIS_TEST_FTP_PASSWORD_FILE (mode 0600), AEGIS_TEST_FTP_CA_FILE (the
# servers' certificate), AEGIS_TEST_FTP_PATH (a directory the user may
# write; the same path on this host), AEGIS_TEST_FTP_READONLY_PATH (one it
# may not) and, where this host lets us mount a tmpfs,
# AEGIS_TEST_FTP_FULL_PATH (a 2 MiB file system).
#
# The test user (aegistest) is created once per machine, with a random
# password kept in /var/lib/aegis-test/password (mode 0600).
set -euo pipefail

TEST_USER=aegistest

# shellcheck source=hack/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || die "usage: $0 start|stop|kill DIR"
cmd=$1
dir=$2
[ "$(id -u)" -eq 0 ] || die "must run as root (it starts vsftpd and manages a test user)"

# pick_ports FILE N: N consecutive free ports, remembered in FILE.
pick_ports() {
	local file=$1 n=$2 base i ok
	if [ -s "$file" ]; then
		cat "$file"
		return
	fi
	while :; do
		base=$(random_port)
		ok=1
		for i in $(seq 0 $((n - 1))); do
			port_free $((base + i)) || {
				ok=0
				break
			}
		done
		[ $ok -eq 1 ] && break
	done
	echo "$base" >"$file"
	echo "$base"
}

# config NAME PORT PASV_MIN IMPLICIT: writes DIR/NAME.conf.
config() {
	local name=$1 port=$2 pasv=$3 implicit=$4 force=NO
	[ "$implicit" = YES ] && force=YES
	cat >"$dir/$name.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=077
userlist_enable=YES
userlist_deny=NO
userlist_file=$dir/user_list
pam_service_name=vsftpd
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$pasv
pasv_max_port=$((pasv + 9))
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
max_clients=100
max_per_ip=100
idle_session_timeout=600
data_connection_timeout=120
xferlog_enable=YES
vsftpd_log_file=$dir/$name.log
dual_log_enable=NO
ssl_enable=YES
implicit_ssl=$implicit
rsa_cert_file=$dir/tls/cert.pem
rsa_private_key_file=$dir/tls/key.pem
allow_anon_ssl=NO
force_local_logins_ssl=$force
force_local_data_ssl=$force
ssl_ciphers=HIGH
EOF
}

running() {
	[ -s "$dir/$1.pid" ] && alive "$(cat "$dir/$1.pid")"
}

run_server() {
	local name=$1 port=$2 i
	running "$name" && return 0
	setsid /usr/sbin/vsftpd "$dir/$name.conf" >>"$dir/$name.out" 2>&1 </dev/null &
	echo $! >"$dir/$name.pid"
	for i in $(seq 1 100); do
		running "$name" || break # it could not listen, for one
		if ! port_free "$port"; then
			sleep 0.1
			running "$name" && return 0 # listening, and it is ours
			break
		fi
		sleep 0.1
	done
	cat "$dir/$name.out" >&2 || true
	die "vsftpd ($name) did not come up on 127.0.0.1:$port (is the port taken? remove $dir/ports to pick others)"
}

start() {
	[ -x /usr/sbin/vsftpd ] || apt_install vsftpd
	command -v openssl >/dev/null || apt_install openssl
	ensure_user
	mkdir -p /var/run/vsftpd/empty

	mkdir -p "$dir"
	# The test user must reach its data under DIR (test-env.sh and t.TempDir
	# make DIR's parent private to root).
	# Only ever add the search bit to the parent: it may be /tmp itself.
	chmod o+x "$(dirname "$dir")"
	chmod 0711 "$dir"
	runuser -u "$TEST_USER" -- test -x "$dir" ||
		die "the test user cannot reach $dir: make its ancestors searchable (o+x), or use a directory under /tmp"
	local data=$dir/data secrets=$dir/secrets
	mkdir -p "$data" "$secrets" "$dir/tls"
	chmod 0700 "$secrets"
	chown "$TEST_USER:" "$data"
	chmod 0755 "$data"
	mkdir -p "$data/readonly"
	chown root: "$data/readonly"
	chmod 0755 "$data/readonly"
	echo "$TEST_USER" >"$dir/user_list"
	(umask 077 && cp /var/lib/aegis-test/password "$secrets/password")
	if [ ! -s "$dir/tls/cert.pem" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
			-subj "/CN=aegis-test-ftp" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
			-keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null ||
			die "openssl could not make a certificate"
		chmod 0600 "$dir/tls/key.pem"
	fi

	if [ -e "$data/full" ] && ! mountpoint -q "$data/full"; then
		rmdir "$data/full" 2>/dev/null || true
	fi
	if ! mountpoint -q "$data/full" 2>/dev/null; then
		mkdir -p "$data/full"
		if ! mount -t tmpfs -o "size=2m,mode=0755,uid=$(id -u "$TEST_USER")" aegis-test-full "$data/full" 2>/dev/null; then
			log "cannot mount a tmpfs here: the full-disk test will not run"
			rmdir "$data/full"
		fi
	fi

	# Ports: BASE plain/explicit, BASE+1 implicit, BASE+10.. passive ranges.
	local base
	base=$(pick_ports "$dir/ports" 30)
	config explicit "$base" $((base + 10)) NO
	config implicit $((base + 1)) $((base + 20)) YES
	run_server explicit "$base"
	run_server implicit $((base + 1))

	log "vsftpd on 127.0.0.1:$base (plain, explicit TLS) and 127.0.0.1:$((base + 1)) (implicit TLS), user $TEST_USER, data in $data"
	cat <<EOF
export AEGIS_TEST_FTP_HOST=127.0.0.1
export AEGIS_TEST_FTP_PORT=$base
export AEGIS_TEST_FTP_IMPLICIT_PORT=$((base + 1))
export AEGIS_TEST_FTP_USER=$TEST_USER
export AEGIS_TEST_FTP_PASSWORD_FILE=$secrets/password
export AEGIS_TEST_FTP_CA_FILE=$dir/tls/cert.pem
export AEGIS_TEST_FTP_PATH=$data
export AEGIS_TEST_FTP_READONLY_PATH=$data/readonly
EOF
	if mountpoint -q "$data/full" 2>/dev/null; then
		echo "export AEGIS_TEST_FTP_FULL_PATH=$data/full"
	fi
}

# signal SIG: sends SIG to both servers and every session they started, and
# waits until they are gone.
signal() {
	local sig=$1 name pid pids i
	for name in explicit implicit; do
		[ -s "$dir/$name.pid" ] || continue
		pid=$(cat "$dir/$name.pid")
		# Sessions are children of the listener, and theirs in turn (they may
		# start sessions of their own, so the session id does not find them).
		pids=$(descendants "$pid")
		# shellcheck disable=SC2086
		kill "-$sig" $pids "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			alive "$pid" || break
			sleep 0.1
		done
		# shellcheck disable=SC2086
		kill -KILL $pids "$pid" 2>/dev/null || true
		rm -f "$dir/$name.pid"
	done
}

stop() {
	signal TERM
	if mountpoint -q "$dir/data/full" 2>/dev/null; then
		umount -l "$dir/data/full" || true
	fi
}

case $cmd in
start) start ;;
stop) stop ;;
kill) signal KILL ;;
*) die "usage: $0 start|stop|kill DIR" ;;
esac
