#!/bin/sh
# Installs the command-line tools the tests use to check what Aegis writes
# with tools that are not Aegis (tar, zstd, gzip, openssl, age, and setfattr,
# setfacl, setcap for extended attributes). Idempotent:
# it does nothing when they are all present.
set -eu
need=""
for tool in tar:tar zstd:zstd gzip:gzip openssl:openssl age:age setfattr:attr setfacl:acl setcap:libcap2-bin; do
	cmd=${tool%%:*}
	pkg=${tool##*:}
	command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "hack/deps.sh: installing$need"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
