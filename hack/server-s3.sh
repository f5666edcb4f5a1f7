#!/bin/bash
# S3 servers of their own for the tests: two versitygw gateways (Apache-2.0)
# on 127.0.0.1, one over plain HTTP and one over HTTPS with a self-signed
# certificate, each with its data under DIR and a test bucket made through
# the S3 API. Also installs rclone, the client the tests check Aegis with.
#
#   hack/server-s3.sh start DIR   # prints `export VAR=value` lines
#   hack/server-s3.sh stop DIR    # stops both gateways
#   hack/server-s3.sh kill DIR    # SIGKILLs both, keeping DIR: a later
#                                 # `start DIR` brings them back on the same
#                                 # ports with the same data and keys
#
# Exports AEGIS_TEST_S3_ENDPOINT (http://127.0.0.1:PORT),
# AEGIS_TEST_S3_TLS_ENDPOINT (https://127.0.0.1:PORT), AEGIS_TEST_S3_BUCKET,
# AEGIS_TEST_S3_LOCKED_BUCKET (on the plain gateway, Object Lock enabled),
# AEGIS_TEST_S3_WRITE_ONLY_BUCKET and AEGIS_TEST_S3_WRITE_ONLY_CREDENTIALS_FILE
# (an account that may write there but not delete),
# AEGIS_TEST_S3_CREDENTIALS_FILE (an AWS shared credentials file, mode 0600),
# AEGIS_TEST_S3_ACCESS_KEY, AEGIS_TEST_S3_SECRET_KEY, AEGIS_TEST_S3_CA_FILE
# (the HTTPS gateway's certificate), AEGIS_TEST_S3_DATA_DIR and
# AEGIS_TEST_S3_TLS_DATA_DIR (the gateways' files on disk),
# AEGIS_TEST_S3_PIDS, AEGIS_TEST_VERSITYGW and AEGIS_TEST_RCLONE.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
BUCKET=aegis-test
# A second bucket on the plain gateway, created with Object Lock enabled
# (x-amz-bucket-object-lock-enabled: true): versitygw then keeps the
# retention of each object and refuses to delete or overwrite a locked one.
LOCKED_BUCKET=aegis-test-locked
# A third, where a second account (versitygw's internal IAM, role user) may
# list, read and write through the bucket policy, but not delete: the
# write-only credentials of docs/security.md.
WRITE_ONLY_BUCKET=aegis-test-write-only
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

log() { echo "server-s3: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[ $# -eq 2 ] || die "usage: $0 start|stop|kill DIR"
cmd=$1
dir=$2

apt_install() {
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	# Other installs may hold the dpkg lock for a while; wait for it.
	$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2 ||
		{
			$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
			$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2
		}
}

# versitygw is built from source with the Go toolchain and cached in
# $(go env GOPATH)/bin; `go version -m` tells which version is cached.
versitygw_bin() {
	local bin
	bin="$(go env GOPATH)/bin/versitygw"
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "mod[[:space:]]*github.com/versity/versitygw[[:space:]]*$VERSITYGW_VERSION"; then
		echo "$bin"
		return
	fi
	log "building versitygw $VERSITYGW_VERSION (cached in $(dirname "$bin"))"
	(cd / && GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") >&2 ||
		die "go install versitygw failed"
	echo "$bin"
}

# alive PID: the process runs (a killed one may linger as a zombie until
# whoever adopted it reaps it, and kill -0 still succeeds on a zombie).
alive() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# make_bucket URL BUCKET CURLOPTS...: creates the bucket through the S3
# API; one that exists already is fine. The keys go to curl on stdin, not
# argv.
make_bucket() {
	local url=$1 bucket=$2 code
	shift 2
	code=$(printf 'user = "%s:%s"\n' "$access" "$secret" |
		curl -s -o "$dir/make-bucket.out" -w '%{http_code}' -K - --aws-sigv4 "aws:amz:us-east-1:s3" \
			-H "x-amz-content-sha256: $EMPTY_SHA256" -X PUT "$@" "$url/$bucket")
	case $code in
	200 | 409) ;;
	*)
		cat "$dir/make-bucket.out" >&2 || true
		die "creating bucket $bucket at $url: HTTP $code"
		;;
	esac
}

# s3_send METHOD PATH-AND-QUERY BODYFILE: a request signed with the root
# keys, on the plain gateway, with BODYFILE as its body; fails unless
# HTTP 2xx. Keys and body reach curl through stdin and a file, not argv.
s3_send() {
	local method=$1 target=$2 body=$3 code sum
	sum=$(sha256sum "$body" | cut -d' ' -f1)
	code=$(printf 'user = "%s:%s"\n' "$access" "$secret" |
		curl -s -o "$dir/s3-send.out" -w '%{http_code}' -K - --aws-sigv4 "aws:amz:us-east-1:s3" \
			-H "x-amz-content-sha256: $sum" -X "$method" --data-binary "@$body" "http://127.0.0.1:$port$target")
	case $code in
	2??) ;;
	*)
		cat "$dir/s3-send.out" >&2 || true
		die "$method $target: HTTP $code"
		;;
	esac
}

# write_only_account: the account of AEGIS_TEST_S3_WRITE_ONLY_CREDENTIALS_FILE
# and its bucket, whose policy lets it do everything Aegis does but delete.
write_only_account() {
	local wa ws
	if [ ! -s "$dir/credentials-write-only" ]; then
		wa=$(openssl rand -hex 10 | tr 'a-f' 'A-F')
		ws=$(openssl rand -base64 30 | tr -d '/+=\n')
		(umask 077 && printf '<Account><Access>%s</Access><Secret>%s</Secret><Role>user</Role><UserID>0</UserID><GroupID>0</GroupID><ProjectID>0</ProjectID></Account>' \
			"$wa" "$ws" >"$dir/write-only-account.xml")
		s3_send PATCH /create-user "$dir/write-only-account.xml"
		rm -f "$dir/write-only-account.xml"
		(umask 077 && printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
			"$wa" "$ws" >"$dir/credentials-write-only")
	fi
	wa=$(sed -n 's/^aws_access_key_id = //p' "$dir/credentials-write-only")
	make_bucket "http://127.0.0.1:$port" "$WRITE_ONLY_BUCKET"
	printf '%s\n' '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["'"$wa"'"]},' \
		' "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation", "s3:PutObject", "s3:GetObject",' \
		'            "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],' \
		' "Resource": ["arn:aws:s3:::'"$WRITE_ONLY_BUCKET"'", "arn:aws:s3:::'"$WRITE_ONLY_BUCKET"'/*"]}]}' \
		>"$dir/write-only-policy.json"
	s3_send PUT "/$WRITE_ONLY_BUCKET?policy=" "$dir/write-only-policy.json"
}

# run_gateway NAME PORT DATA [TLS OPTIONS...]: starts one gateway in the
# background and records its pid in DIR/NAME.pid.
run_gateway() {
	local name=$1 port=$2 data=$3
	shift 3
	if [ -s "$dir/$name.pid" ] && alive "$(cat "$dir/$name.pid")"; then
		return # already running
	fi
	mkdir -p "$data"
	ROOT_ACCESS_KEY=$access ROOT_SECRET_KEY=$secret \
		setsid "$gw" --port "127.0.0.1:$port" --quiet "$@" posix "$data" \
		>>"$dir/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/$name.pid"
}

# random_port: a free port below the kernel's ephemeral range (outgoing
# connections take ports from that range at any time).
random_port() {
	local low port
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	while :; do
		port=$((10000 + RANDOM % (low - 10000)))
		port_free "$port" && break
	done
	echo "$port"
}

# start_gateway NAME PORTFILE DATA URLSCHEME [OPTIONS...]: starts one
# gateway on the port recorded in PORTFILE (a restart) or on a new one, and
# waits until it answers. A new port that turns out taken (another test's
# server started in between) is replaced by another.
start_gateway() {
	local name=$1 portfile=$2 data=$3 scheme=$4 port fresh tries=0
	shift 4
	local curlopts=()
	[ "$scheme" = https ] && curlopts=(--cacert "$dir/tls/cert.pem")
	while :; do
		tries=$((tries + 1))
		fresh=0
		if [ ! -s "$portfile" ]; then
			random_port >"$portfile"
			fresh=1
		fi
		port=$(cat "$portfile")
		run_gateway "$name" "$port" "$data" "$@"
		local pid i
		pid=$(cat "$dir/$name.pid")
		for i in $(seq 1 150); do
			alive "$pid" || break # it could not listen, for one
			if curl -s -m 5 -o /dev/null "${curlopts[@]}" "$scheme://127.0.0.1:$port/" && alive "$pid"; then
				return 0
			fi
			sleep 0.2
		done
		kill -KILL "$(cat "$dir/$name.pid")" 2>/dev/null || true
		rm -f "$dir/$name.pid"
		if [ $fresh -eq 1 ] && [ $tries -lt 5 ]; then
			rm -f "$portfile"
			continue
		fi
		tail -n 20 "$dir/$name.log" >&2 || true
		die "versitygw ($name) did not come up on 127.0.0.1:$port"
	done
}

start() {
	command -v curl >/dev/null || apt_install curl ca-certificates
	command -v openssl >/dev/null || apt_install openssl
	command -v rclone >/dev/null || apt_install rclone
	command -v go >/dev/null || die "go is not on PATH"
	gw=$(versitygw_bin)

	mkdir -p "$dir"
	chmod 0700 "$dir"
	# Keys and certificate are made once per DIR, so a restart keeps them.
	if [ ! -s "$dir/credentials" ]; then
		access=$(openssl rand -hex 10 | tr 'a-f' 'A-F')
		secret=$(openssl rand -base64 30 | tr -d '/+=\n')
		(umask 077 && printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
			"$access" "$secret" >"$dir/credentials")
	fi
	access=$(sed -n 's/^aws_access_key_id = //p' "$dir/credentials")
	secret=$(sed -n 's/^aws_secret_access_key = //p' "$dir/credentials")
	if [ ! -s "$dir/tls/cert.pem" ]; then
		mkdir -p "$dir/tls"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
			-subj "/CN=aegis-test-s3" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
			-keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null ||
			die "openssl could not make a certificate"
		chmod 0600 "$dir/tls/key.pem"
	fi

	mkdir -p "$dir/iam"
	start_gateway plain "$dir/port" "$dir/data" http --iam-dir "$dir/iam"
	start_gateway tls "$dir/tls-port" "$dir/tls-data" https --cert "$dir/tls/cert.pem" --key "$dir/tls/key.pem"
	local port tport
	port=$(cat "$dir/port")
	tport=$(cat "$dir/tls-port")
	make_bucket "http://127.0.0.1:$port" "$BUCKET"
	make_bucket "http://127.0.0.1:$port" "$LOCKED_BUCKET" -H "x-amz-bucket-object-lock-enabled: true"
	write_only_account
	make_bucket "https://127.0.0.1:$tport" "$BUCKET" --cacert "$dir/tls/cert.pem"
	log "versitygw $VERSITYGW_VERSION on http://127.0.0.1:$port and https://127.0.0.1:$tport, bucket $BUCKET"
	cat <<EOF
export AEGIS_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export AEGIS_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:$tport
export AEGIS_TEST_S3_BUCKET=$BUCKET
export AEGIS_TEST_S3_LOCKED_BUCKET=$LOCKED_BUCKET
export AEGIS_TEST_S3_WRITE_ONLY_BUCKET=$WRITE_ONLY_BUCKET
export AEGIS_TEST_S3_WRITE_ONLY_CREDENTIALS_FILE=$dir/credentials-write-only
export AEGIS_TEST_S3_CREDENTIALS_FILE=$dir/credentials
export AEGIS_TEST_S3_ACCESS_KEY=$access
export AEGIS_TEST_S3_SECRET_KEY=$secret
export AEGIS_TEST_S3_CA_FILE=$dir/tls/cert.pem
export AEGIS_TEST_S3_DATA_DIR=$dir/data
export AEGIS_TEST_S3_TLS_DATA_DIR=$dir/tls-data
export AEGIS_TEST_S3_PIDS="$(cat "$dir/plain.pid") $(cat "$dir/tls.pid")"
export AEGIS_TEST_VERSITYGW=$gw
export AEGIS_TEST_RCLONE=$(command -v rclone)
EOF
}

# signal SIG: sends SIG to both gateways and waits until they are gone.
signal() {
	local sig=$1 name pid i
	for name in plain tls; do
		[ -s "$dir/$name.pid" ] || continue
		pid=$(cat "$dir/$name.pid")
		kill "-$sig" "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			alive "$pid" || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		rm -f "$dir/$name.pid"
	done
}

case $cmd in
start) start ;;
stop) signal TERM ;;
kill) signal KILL ;;
*) die "usage: $0 start|stop|kill DIR" ;;
esac
