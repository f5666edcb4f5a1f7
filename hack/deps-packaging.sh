#!/bin/sh
# Installs what the packaging tests check the shipped files with, from the
# distribution's packages: systemd-analyze (systemd), man (man-db), and
# ansible-playbook and ansible-lint (ansible-core, ansible-lint).
# Idempotent: it does nothing when they are all present.
set -eu
need=""
for tool in systemd-analyze:systemd man:man-db ansible-playbook:ansible-core ansible-lint:ansible-lint; do
	cmd=${tool%%:*}
	pkg=${tool##*:}
	command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "hack/deps-packaging.sh: installing$need"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
