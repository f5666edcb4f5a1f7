#!/bin/bash
# An SSH/SFTP server of its own for the tests: the distribution's sshd, run
# with its own config, host key and authorized key under DIR, on 127.0.0.1 on
# a free high port, serving SFTP only (ForceCommand internal-sftp) to one
# unprivileged test user. It never touches the system's sshd.
#
#   hack/server-sftp.sh start DIR   # prints `export VAR=value` lines
#   hack/server-sftp.sh stop DIR
#   hack/server-sftp.sh kill DIR    # SIGKILLs the server and its sessions,
#                                   # keeping DIR: a later `start DIR` brings
#                                   # it back on the same port and keys
#
# Exports AEGIS_TEST_SFTP_HOST, AEGIS_TEST_SFTP_PORT, AEGIS_TEST_SFTP_USER,
# AEGIS_TEST_SFTP_KEY_FILE (the user's private key, mode 0600),
# AEGIS_TEST_SFTP_PASSWORD_FILE (the user's password, mode 0600),
# AEGIS_TEST_SFTP_KNOWN_HOSTS (a known_hosts file with the server's key),
# AEGIS_TEST_SFTP_PATH (a directory the user may write; the same path on this
# host), AEGIS_TEST_SFTP_READONLY_PATH (one it may not) and, where this host
# lets us mount a tmpfs, AEGIS_TEST_SFTP_FULL_PATH (a 2 MiB file system).
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
[ "$(id -u)" -eq 0 ] || die "must run as root (it starts sshd and manages a test user)"

running() {
	[ -s "$dir/sshd.pid" ] && alive "$(cat "$dir/sshd.pid")"
}

start() {
	[ -x /usr/sbin/sshd ] || apt_install openssh-server openssh-client
	command -v ssh-keygen >/dev/null || apt_install openssh-client
	command -v openssl >/dev/null || apt_install openssl
	ensure_user

	mkdir -p "$dir"
	# The test user must reach its data under DIR (test-env.sh and t.TempDir
	# make DIR's parent private to root).
	# Only ever add the search bit to the parent: it may be /tmp itself.
	chmod o+x "$(dirname "$dir")"
	chmod 0711 "$dir"
	runuser -u "$TEST_USER" -- test -x "$dir" ||
		die "the test user cannot reach $dir: make its ancestors searchable (o+x), or use a directory under /tmp"
	local data=$dir/data secrets=$dir/secrets
	mkdir -p "$data" "$secrets" /run/sshd
	chmod 0700 "$secrets"
	chown "$TEST_USER:" "$data"
	chmod 0755 "$data"
	mkdir -p "$data/readonly"
	chown root: "$data/readonly"
	chmod 0755 "$data/readonly"
	[ -s "$secrets/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C aegis-test-host -f "$secrets/host_ed25519"
	[ -s "$secrets/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C aegis-test-client -f "$secrets/id_ed25519"
	# sshd reads authorized_keys as the user.
	cp "$secrets/id_ed25519.pub" "$dir/authorized_keys"
	chmod 0644 "$dir/authorized_keys"
	(umask 077 && cp /var/lib/aegis-test/password "$secrets/password")

	local port
	if [ -s "$dir/port" ]; then
		port=$(cat "$dir/port")
	else
		while :; do
			port=$(random_port)
			port_free "$port" && break
		done
		echo "$port" >"$dir/port"
	fi
	printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$secrets/host_ed25519.pub")" >"$dir/known_hosts"

	cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $secrets/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
# The key files live under DIR, outside the user's home.
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $TEST_USER
Subsystem sftp internal-sftp
ForceCommand internal-sftp
PermitTTY no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
MaxStartups 100:30:200
MaxSessions 50
LogLevel INFO
EOF

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

	if ! running; then
		setsid /usr/sbin/sshd -D -e -f "$dir/sshd_config" >>"$dir/sshd.log" 2>&1 </dev/null &
		local i
		for i in $(seq 1 100); do
			if ! port_free "$port"; then
				break
			fi
			sleep 0.1
		done
		# sshd writes its pid file once it listens; without one, the port
		# answering is someone else's.
		for i in $(seq 1 50); do
			running && break
			sleep 0.1
		done
		if port_free "$port" || ! running; then
			tail -n 20 "$dir/sshd.log" >&2 || true
			die "sshd did not come up on 127.0.0.1:$port (is the port taken? remove $dir/port to pick another)"
		fi
	fi
	log "sshd on 127.0.0.1:$port, user $TEST_USER, data in $data"
	cat <<EOF
export AEGIS_TEST_SFTP_HOST=127.0.0.1
export AEGIS_TEST_SFTP_PORT=$port
export AEGIS_TEST_SFTP_USER=$TEST_USER
export AEGIS_TEST_SFTP_KEY_FILE=$secrets/id_ed25519
export AEGIS_TEST_SFTP_PASSWORD_FILE=$secrets/password
export AEGIS_TEST_SFTP_KNOWN_HOSTS=$dir/known_hosts
export AEGIS_TEST_SFTP_PATH=$data
export AEGIS_TEST_SFTP_READONLY_PATH=$data/readonly
EOF
	if mountpoint -q "$data/full" 2>/dev/null; then
		echo "export AEGIS_TEST_SFTP_FULL_PATH=$data/full"
	fi
}

# signal SIG: sends SIG to sshd and every session it started, and waits
# until they are gone.
signal() {
	local sig=$1 pid pids i
	[ -s "$dir/sshd.pid" ] || return 0
	pid=$(cat "$dir/sshd.pid")
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
	rm -f "$dir/sshd.pid"
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
