#!/bin/sh
# Restores one deduplicated Aegis snapshot from a copy of a destination,
# without Aegis: POSIX sh with jq, head/tail, sort, grep, sha256sum, tar,
# age or openssl, and zstd or gzip. docs/dedup.md describes the formats.
#
#   recover-dedup.sh [-i AGE_IDENTITY | -p OPENSSL_KEYFILE] COPY MANIFEST TARGET
#
# COPY is the destination's root (a local directory, or an S3 bucket or
# SFTP directory downloaded with any tool); MANIFEST is the snapshot's
# manifest.json under COPY (HOST/POLICY/SOURCE/ID/manifest.json); files
# objects are unpacked under TARGET/SOURCE/, other objects (database dumps)
# are written there as files. Each object's stream is checked against the
# manifest's SHA-256 before it is unpacked.
#
# The script does not authenticate the manifest (Aegis does: the sealed
# copy in age mode, the HMAC in openssl mode); every chunk is authenticated
# by age, and every stream by the manifest's SHA-256.
set -eu

identity='' passfile=''
while getopts i:p: opt; do
	case $opt in
	i) identity=$OPTARG ;;
	p) passfile=$OPTARG ;;
	*) echo "usage: $0 [-i AGE_IDENTITY | -p OPENSSL_KEYFILE] COPY MANIFEST TARGET" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || { echo "usage: $0 [-i AGE_IDENTITY | -p OPENSSL_KEYFILE] COPY MANIFEST TARGET" >&2; exit 2; }
copy=$1 manifest=$2 target=$3

die() { echo "recover-dedup: $*" >&2; exit 1; }

[ "$(jq -r .storage "$manifest")" = deduplicated ] || die "$manifest is not a deduplicated snapshot (archive snapshots: see docs/format.md)"
host=$(jq -r .host "$manifest") policy=$(jq -r .policy "$manifest") source=$(jq -r .source "$manifest")
encryption=$(jq -r .encryption.algorithm "$manifest")
compression=$(jq -r .compression.algorithm "$manifest")
iterations=$(jq -r '.encryption.iterations // 0' "$manifest")
repo=$copy/$host/$policy/_dedup
[ -d "$repo/index" ] || die "no repository at $repo"

case $encryption in
age) [ -n "$identity" ] || die "the snapshot is encrypted with age: give -i IDENTITY" ;;
openssl) [ -n "$passfile" ] || die "the snapshot is encrypted with openssl: give -p KEYFILE" ;;
none) ;;
*) die "unknown encryption $encryption" ;;
esac

# open_chunk: sealed chunk on stdin, plaintext on stdout.
open_chunk() {
	case $encryption in
	age) age -d -i "$identity" ;;
	openssl) openssl enc -d -aes-256-cbc -pbkdf2 -iter "$iterations" -pass file:"$passfile" ;;
	none) cat ;;
	esac | case $compression in
	zstd) zstd -d -q ;;
	gzip) gzip -d ;;
	*) cat ;;
	esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# Where each chunk is: ID PACK OFFSET LENGTH, one copy per chunk.
jq -r '.packs[] | .id as $p | .chunks[] | "\(.id) \($p) \(.offset) \(.length)"' "$repo"/index/*.json |
	sort -u -k1,1 > "$work/locations"

# stream OBJECT_INDEX: the object's raw stream on stdout.
stream() {
	jq -r --argjson n "$1" '.objects[$n].chunks[].id' "$manifest" |
		while read -r id; do
			loc=$(grep -m1 "^$id " "$work/locations") || die "chunk $id is in no index"
			set -- $loc
			pack=$repo/packs/$(printf %.2s "$2")/$2.tar
			tail -c +$(($3 + 1)) "$pack" | head -c "$4" | open_chunk || die "chunk $id in pack $2 does not open"
		done
}

mkdir -p "$target/$source"
count=$(jq '.objects | length' "$manifest")
i=0
while [ "$i" -lt "$count" ]; do
	name=$(jq -r --argjson n "$i" '.objects[$n].name' "$manifest")
	format=$(jq -r --argjson n "$i" '.objects[$n].format' "$manifest")
	want=$(jq -r --argjson n "$i" '.objects[$n].sha256' "$manifest")
	case $name in */* | '' | . | ..) die "object name $name is not a plain file name" ;; esac
	stream "$i" > "$work/object"
	got=$(sha256sum < "$work/object" | cut -d' ' -f1)
	[ "$got" = "$want" ] || die "object $name: SHA-256 $got differs from the manifest's $want"
	if [ "$format" = tar ]; then
		tar -xpf "$work/object" -C "$target/$source"
	else
		mv "$work/object" "$target/$source/$name"
		chmod 600 "$target/$source/$name"
	fi
	echo "restored $name of snapshot $(jq -r .id "$manifest") into $target/$source"
	i=$((i + 1))
done
