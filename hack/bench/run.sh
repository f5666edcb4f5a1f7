#!/bin/sh
# make bench: times Aegis against the tools users would otherwise pick, on
# one reproducible data set, and prints a table (docs/performance.md keeps
# the figures of this repository's machine).
#
#   hack/bench/run.sh [SCALE]      SCALE multiplies the generated data (default 1)
#
# The data set: the Go toolchain under $(go env GOROOT) (about 15,000 small
# files), SCALE x 256 MiB of incompressible data, SCALE x 512 MiB of a
# compressible log. Everything runs on the same copy, page cache warm.
set -eu
cd "$(dirname "$0")/../.."
REPO=$(pwd)
SCALE=${1:-1}
WORK=${AEGIS_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/aegis-bench.XXXXXX")}
BIN=${AEGIS_BIN:-$REPO/bin/aegis-agent}
export LC_ALL=C

need=""
command -v restic >/dev/null || need="$need restic"
[ -x /usr/bin/time ] || need="$need time"
command -v zstd >/dev/null || need="$need zstd"
command -v age >/dev/null || need="$need age"
if [ -n "$need" ]; then
	echo "bench: installing$need" >&2
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine may have no package lists yet: update once, then retry.
	$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null ||
		{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null; }
fi
[ -x "$BIN" ] || make -s build

DATA="$WORK/data"
if [ ! -f "$DATA/.complete-$SCALE" ]; then
	echo "bench: generating the data set in $DATA (scale $SCALE)" >&2
	rm -rf "$DATA"
	mkdir -p "$DATA"
	cp -a "$(go env GOROOT)" "$DATA/goroot"
	# Incompressible but reproducible: AES-CTR keystream of a fixed key.
	openssl enc -aes-256-ctr -nosalt -pass pass:aegis-bench -pbkdf2 </dev/zero 2>/dev/null |
		head -c $((SCALE * 256 * 1024 * 1024)) >"$DATA/random.bin"
	# A log of varied, compressible lines.
	awk -v n=$((SCALE * 4600000)) 'BEGIN { for (i = 0; i < n; i++) printf "2026-11-25T%02d:%02d:%02d.%03dZ INFO request id=%08x path=/api/v1/items/%d status=%d bytes=%d dur=%dms\n", (i/3600000)%24, (i/60000)%60, (i/1000)%60, i%1000, i*2654435761%4294967296, i%9973, (i%17==0)?500:200, (i*7919)%65536, i%250 }' >"$DATA/app.log"
	touch "$DATA/.complete-$SCALE"
fi
SIZE=$(du -sb --exclude=.complete-* "$DATA" | cut -f1)
FILES=$(find "$DATA" -type f | wc -l)

# The age key of the runs (recipient only for the backups).
KEY="$WORK/age.key"
[ -f "$KEY" ] || "$BIN" keys generate --out "$KEY" --keys-dir "$WORK/keys" >/dev/null
RECIPIENT=$(sed -n 's/^# public key: //p' "$KEY")
OPENSSL_KEY="$WORK/openssl.key"
[ -f "$OPENSSL_KEY" ] || "$BIN" keys generate --kind openssl --out "$OPENSSL_KEY" --keys-dir "$WORK/keys" >/dev/null

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measure NAME BYTES CMD...: wall, CPU, peak RSS of one run via GNU time.
measure() {
	name=$1; bytes=$2; shift 2
	sync
	/usr/bin/time -f '%e %U %S %M' -o "$WORK/time.out" "$@" >"$WORK/out.log" 2>&1 || {
		echo "bench: $name failed:" >&2; tail -20 "$WORK/out.log" >&2; return 1; }
	read -r wall user sys rss <"$WORK/time.out"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$bytes" "$wall" "$user" "$sys" "$rss" >>"$RESULTS"
	echo "bench: $name: ${wall}s" >&2
}

aegis_env() {
	export AEGIS_CONFIG_DIR="$WORK/aegis/config" AEGIS_STATE_DIR="$WORK/aegis/state" \
		AEGIS_LOG_DIR="$WORK/aegis/logs" AEGIS_KEYS_DIR="$WORK/keys"
}

aegis_policy() { # DEST-YAML-BLOCK
	rm -rf "$WORK/aegis"
	mkdir -p "$WORK/aegis/config"
	cat >"$WORK/aegis/config/bench.yaml" <<EOM
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: target}
spec:
$1
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: bench}
spec:
  schedule: "@daily"
  sources:
    - name: data
      files: {paths: ["$DATA"], exclude: [".complete-*"]}
  destinations: [target]
  compression: {algorithm: zstd, level: 3}
  encryption:
    age: {recipients: ["$RECIPIENT"]}
EOM
}

aegis_env
# 1. Aegis to the local destination, restore, --once with nothing due.
aegis_policy "  local: {path: $WORK/aegis/backups}"
measure "aegis backup (local, zstd+age)" "$SIZE" "$BIN" run bench --log-level warn
measure "aegis --once, nothing due" 0 "$BIN" --once --log-level warn
rm -rf "$WORK/restore"
measure "aegis restore (local)" "$SIZE" "$BIN" restore bench --identity "$KEY" --target "$WORK/restore" --log-level warn
rm -rf "$WORK/restore"

# 2. Aegis to S3 on versitygw over loopback, when the S3 driver and server exist.
if [ -x hack/server-s3.sh ] && grep -q '"s3"' drivers/registry/registry.go; then
	mkdir -p "$WORK/s3"
	eval "$(./hack/server-s3.sh start "$WORK/s3")"
	trap './hack/server-s3.sh stop "$WORK/s3" >/dev/null 2>&1 || true' EXIT
	CREDS="$WORK/s3.creds"
	printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AEGIS_TEST_S3_ACCESS_KEY" "$AEGIS_TEST_S3_SECRET_KEY" >"$CREDS"
	chmod 600 "$CREDS"
	aegis_policy "  s3: {provider: other, endpoint: \"$AEGIS_TEST_S3_ENDPOINT\", bucket: \"$AEGIS_TEST_S3_BUCKET\", prefix: bench-$$, credentialsFile: $CREDS}"
	measure "aegis backup (S3 on loopback)" "$SIZE" "$BIN" run bench --log-level warn
fi

# 3. The original tool's pipeline: tar -czf to staging, then openssl enc.
rm -f "$WORK/orig.tar.gz" "$WORK/orig.tar.gz.enc"
# Every backup here ends durable on disk, as Aegis's (it fsyncs each object
# before the rename that publishes it), so the shell pipelines end with a
# sync of their output file; restic syncs its own files.
measure "original: tar -czf + openssl enc" "$SIZE" sh -c "tar -czf '$WORK/orig.tar.gz' -C / '${DATA#/}' && openssl enc -aes-256-cbc -pbkdf2 -salt -pass file:'$OPENSSL_KEY' -in '$WORK/orig.tar.gz' -out '$WORK/orig.tar.gz.enc' && sync '$WORK/orig.tar.gz.enc'"
rm -f "$WORK/orig.tar.gz" "$WORK/orig.tar.gz.enc"

# 4. The raw stream: about the limit of this path on this machine.
measure "raw: tar | zstd -T0 -3 | age" "$SIZE" sh -c "tar -cf - -C / '${DATA#/}' | zstd -T0 -3 -q | age -r '$RECIPIENT' >'$WORK/raw.tar.zst.age' && sync '$WORK/raw.tar.zst.age'"
rm -f "$WORK/raw.tar.zst.age"

# 5. restic's first backup into a local repository.
rm -rf "$WORK/restic"
export RESTIC_PASSWORD=aegis-bench RESTIC_REPOSITORY="$WORK/restic"
restic init -q >/dev/null
measure "restic first backup (local)" "$SIZE" restic backup -q "$DATA"
rm -rf "$WORK/restic"

# 6. --once over 1,000 policies, none due; the idle agent with them.
rm -rf "$WORK/many"
mkdir -p "$WORK/many/config" "$WORK/many/src"
echo x >"$WORK/many/src/x"
printf 'apiVersion: aegis.io/v1\nkind: Destination\nmetadata: {name: disk}\nspec:\n  local: {path: %s}\n' "$WORK/many/backups" >"$WORK/many/config/disk.yaml"
i=1
while [ $i -le 1000 ]; do
	printf 'apiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: p%d}\nspec:\n  schedule: "@daily"\n  sources: [{name: s, files: {paths: [%s]}}]\n  destinations: [disk]\n  encryption: {age: {recipients: ["%s"]}}\n' $i "$WORK/many/src" "$RECIPIENT" >"$WORK/many/config/p$i.yaml"
	i=$((i + 1))
done
export AEGIS_CONFIG_DIR="$WORK/many/config" AEGIS_STATE_DIR="$WORK/many/state" AEGIS_LOG_DIR="$WORK/many/logs"
"$BIN" --once --log-level error >/dev/null 2>&1 || true   # first pass: every policy runs once
"$BIN" --once --log-level error >/dev/null 2>&1 || true   # statuses settle
measure "aegis --once, 1000 policies none due" 0 "$BIN" --once --log-level error
"$BIN" --log-level error >/dev/null 2>&1 &
AGENT=$!
sleep 5
t0=$(awk '{print $14 + $15}' /proc/$AGENT/stat)
sleep 10
t1=$(awk '{print $14 + $15}' /proc/$AGENT/stat)
IDLE_RSS=$(awk '/VmRSS/ {print $2}' /proc/$AGENT/status)
IDLE_CPU=$(( (t1 - t0) ))
kill $AGENT; wait $AGENT 2>/dev/null || true

# The table.
printf '\nAegis benchmark, %s, %s cores, data set %d MB in %d files (scale %s)\n\n' \
	"$(date -u +%Y-%m-%d)" "$(nproc)" $((SIZE / 1000000)) "$FILES" "$SCALE"
awk -F'\t' '
{ name[NR]=$1; bytes[NR]=$2; wall[NR]=$3; cpu[NR]=$4+$5; rss[NR]=$6; n=NR }
END {
	printf "| %-40s | %8s | %8s | %8s | %10s |\n", "run", "wall s", "MB/s", "CPU s", "peak RSS"
	printf "|%s|%s|%s|%s|%s|\n", "------------------------------------------", "----------", "----------", "----------", "------------"
	for (i = 1; i <= n; i++) {
		mbs = (bytes[i] > 0 && wall[i] > 0) ? sprintf("%.0f", bytes[i] / 1e6 / wall[i]) : "-"
		printf "| %-40s | %8.2f | %8s | %8.2f | %7.0f MiB |\n", name[i], wall[i], mbs, cpu[i], rss[i] / 1024
		if (name[i] ~ /^aegis backup \(local/) a = wall[i]
		if (name[i] ~ /^aegis backup \(S3/) s3 = wall[i]
		if (name[i] ~ /^original/) o = wall[i]
		if (name[i] ~ /^raw/) r = wall[i]
		if (name[i] ~ /^restic/) q = wall[i]
	}
	printf "\nRatios (wall time of the Aegis local backup to the other):\n"
	if (r) printf "  Aegis / raw tar|zstd|age stream: %.2f (target <= 1.25)\n", a / r
	if (q) printf "  Aegis / restic first backup:     %.2f (target <= 0.5)\n", a / q
	if (o) printf "  original pipeline / Aegis:       %.2f (target >= 3)\n", o / a
	if (s3) printf "  S3 throughput / local:           %.2f (target >= 0.8)\n", a / s3
}' "$RESULTS"
printf '\nIdle agent with 1000 policies: RSS %d MiB, CPU %d ticks in 10 s\n' $((IDLE_RSS / 1024)) "$IDLE_CPU"
[ -n "${AEGIS_BENCH_DIR:-}" ] || rm -rf "$WORK"
