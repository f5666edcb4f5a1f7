#!/bin/sh
# Installs Debian's chromium for the web console's browser tests
# (reconcile/web, driven headless through chromedp). Idempotent: it does
# nothing when chromium is present.
set -eu
command -v chromium >/dev/null 2>&1 && exit 0
echo "hack/deps-browser.sh: installing chromium"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
