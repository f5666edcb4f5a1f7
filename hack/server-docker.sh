#!/bin/bash
# A Docker engine for the tests, from the distribution's docker.io package.
# When a daemon already answers on the default socket it is used as it is;
# otherwise one of its own is started with its data, run state and socket in
# DIR, without any network setup (no bridge, no iptables rules): test
# containers run with --network none. No image can be pulled here, so the
# test image is made locally with `docker import` of a tar holding
# busybox-static.
#
#   hack/server-docker.sh start DIR   # prints `export VAR=value` lines
#   hack/server-docker.sh stop DIR
#
# Exports DOCKER_HOST, AEGIS_TEST_DOCKER_HOST (the same) and
# AEGIS_TEST_DOCKER_IMAGE (the busybox image).
set -euo pipefail

log() { echo "server-docker: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[ $# -eq 2 ] || die "usage: $0 start|stop DIR"
cmd=$1
dir=$2
image=aegis-test-busybox:latest

install_packages() {
	local need=""
	command -v dockerd >/dev/null 2>&1 || need="$need docker.io"
	command -v docker >/dev/null 2>&1 || need="$need docker.io"
	command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || need="$need busybox-static"
	[ -z "$need" ] && return
	log "installing$need"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
	# shellcheck disable=SC2086
	$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need >&2
}

# busybox_static prints the path of a statically linked busybox.
busybox_static() {
	local b
	for b in /bin/busybox /usr/bin/busybox $(command -v busybox 2>/dev/null || true); do
		[ -x "$b" ] || continue
		if ! LC_ALL=C ldd "$b" >/dev/null 2>&1; then
			echo "$b"
			return
		fi
	done
	return 1
}

build_image() {
	local host=$1
	if DOCKER_HOST=$host docker image inspect "$image" >/dev/null 2>&1; then
		return
	fi
	local bb root=$dir/image lib
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/tmp" "$root/data"
	if bb=$(busybox_static); then
		cp "$bb" "$root/bin/busybox"
	else
		# Only a dynamically linked busybox (package busybox, which
		# busybox-static would replace): bring its libraries along.
		bb=$(command -v busybox) || die "no busybox (package busybox-static)"
		cp "$bb" "$root/bin/busybox"
		for lib in $(ldd "$bb" | grep -o '/[^ ]*'); do
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	fi
	local applet
	for applet in $("$root/bin/busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
	done
	chmod 1777 "$root/tmp"
	tar -C "$root" -cf "$dir/image.tar" .
	DOCKER_HOST=$host docker import "$dir/image.tar" "$image" >/dev/null
	rm -rf "$root" "$dir/image.tar"
}

start() {
	install_packages
	mkdir -p "$dir"
	local host
	if [ -z "${DOCKER_HOST:-}" ] && docker version >/dev/null 2>&1; then
		host=unix:///var/run/docker.sock
		log "using the Docker engine that is already running"
		echo external >"$dir/mode"
	else
		host=unix://$dir/docker.sock
		log "starting dockerd with its data in $dir"
		setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" \
			--pidfile "$dir/docker.pid" -H "$host" \
			--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
			--bridge=none --containerd-namespace aegis-test \
			--containerd-plugins-namespace aegis-test-plugins \
			</dev/null >"$dir/dockerd.log" 2>&1 &
		echo own >"$dir/mode"
		local i
		for i in $(seq 1 120); do
			DOCKER_HOST=$host docker version >/dev/null 2>&1 && break
			if [ "$i" -eq 120 ]; then
				tail -n 30 "$dir/dockerd.log" >&2 || true
				die "dockerd did not come up"
			fi
			sleep 0.5
		done
	fi
	build_image "$host"
	log "Docker $(DOCKER_HOST=$host docker version --format '{{.Server.Version}}') at $host, test image $image"
	cat <<EOF
export DOCKER_HOST=$host
export AEGIS_TEST_DOCKER_HOST=$host
export AEGIS_TEST_DOCKER_IMAGE=$image
EOF
}

stop() {
	[ "$(cat "$dir/mode" 2>/dev/null || true)" = own ] || return 0
	local pid i
	if [ -f "$dir/docker.pid" ]; then
		pid=$(cat "$dir/docker.pid")
		if kill "$pid" 2>/dev/null; then
			for i in $(seq 1 60); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.5
			done
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	# Leave no mount behind under DIR, so that removing DIR removes only it.
	local m
	for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop DIR" ;;
esac
