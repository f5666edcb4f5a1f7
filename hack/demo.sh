#!/bin/sh
# make demo: back up the bundled example (hack/demo.yaml.in) to a
# local destination, list the snapshot, restore it and compare. Everything
# goes under _demo/ in the repository (or $AEGIS_DEMO_DIR).
set -eu
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN="$REPO/bin/aegis-agent"
DEMO=${AEGIS_DEMO_DIR:-$REPO/_demo}

rm -rf "$DEMO"
mkdir -p "$DEMO/config" "$DEMO/keys"
export AEGIS_CONFIG_DIR="$DEMO/config" AEGIS_STATE_DIR="$DEMO/state" AEGIS_LOG_DIR="$DEMO/logs"

step() { printf '\n== %s\n' "$*"; }

step "generate an age key (only restore needs the identity)"
"$BIN" keys generate --kind age --out "$DEMO/keys/demo.key"
RECIPIENT=$(sed -n 's/^# public key: //p' "$DEMO/keys/demo.key")

step "write the example manifests into $DEMO/config"
sed -e "s|@DEMO@|$DEMO|g" -e "s|@REPO@|$REPO|g" -e "s|@RECIPIENT@|$RECIPIENT|g" \
	hack/demo.yaml.in > "$DEMO/config/demo.yaml"
"$BIN" validate

step "one reconcile pass: aegis-agent --once"
"$BIN" --once

step "the snapshot, read from the destination"
"$BIN" snapshots demo

step "verify it (reads every object back, decrypts, checks SHA-256)"
"$BIN" verify demo --identity "$DEMO/keys/demo.key"

step "restore it"
"$BIN" restore demo --identity "$DEMO/keys/demo.key" --target "$DEMO/restore"

step "compare with the originals"
for d in api docs manifests; do
	diff -r -x '*.status.yaml' -x testdata "$REPO/$d" "$DEMO/restore/source-tree${REPO}/$d"
done
echo "restored tree is identical to the original"

cat <<EOM

== where everything went
manifests:   $DEMO/config/demo.yaml
status:      $DEMO/config/demo.status.yaml
snapshots:   $DEMO/backups/
restored:    $DEMO/restore/source-tree$REPO
logs:        $DEMO/logs/
state:       $DEMO/state/
age key:     $DEMO/keys/demo.key
EOM
