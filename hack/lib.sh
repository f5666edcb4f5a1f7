# Shared by the hack/server-*.sh scripts that source it: logging, package
# installs, the test user, process and port helpers. Bash.

# log and die prefix messages with the sourcing script's name.
log() { echo "$(basename "$0" .sh): $*" >&2; }
die() {
	log "$*"
	exit 1
}

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	# Other installs may hold the dpkg lock for a while; wait for it.
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2 ||
		{
			apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
			apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2
		}
}

# ensure_user makes the test user and sets its password, the same on every
# start so that concurrent test runs agree on it.
ensure_user() {
	mkdir -p /var/lib/aegis-test
	chmod 0700 /var/lib/aegis-test
	(
		flock 9
		if ! id "$TEST_USER" >/dev/null 2>&1; then
			useradd --system --create-home --home-dir /var/lib/aegis-test-home \
				--shell /bin/sh "$TEST_USER" >&2
		fi
		if [ ! -s /var/lib/aegis-test/password ]; then
			(umask 077 && openssl rand -base64 24 | tr -d '/+=\n' >/var/lib/aegis-test/password)
		fi
		printf '%s:%s\n' "$TEST_USER" "$(cat /var/lib/aegis-test/password)" | chpasswd
	) 9>/var/lib/aegis-test/.lock
}

# alive PID: the process runs (a killed one may linger as a zombie until
# whoever adopted it reaps it, and kill -0 still succeeds on a zombie).
alive() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

# descendants PID: the pids of PID's children, theirs, and so on.
descendants() {
	local child
	for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$child"
		descendants "$child"
	done
}

# random_port: a port below the kernel's ephemeral range (outgoing
# connections take ports from that range at any time), from 10000 up.
random_port() {
	local low
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	echo $((10000 + RANDOM % (low - 10000 - 40)))
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
