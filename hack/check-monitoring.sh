#!/bin/sh
# Checks the monitoring files users load into Prometheus and Grafana:
# promtool check rules and promtool test rules (the unit tests in
# manifests/monitoring/aegis-alerts.test.yaml). Installs promtool from the
# distribution's prometheus package when it is missing. The dashboard and
# the metric names the rules use are checked by `go test ./reconcile/`
# (TestMonitoringFiles), which needs no promtool.
set -eu
cd "$(dirname "$0")/../manifests/monitoring"
if ! command -v promtool >/dev/null 2>&1; then
	echo "hack/check-monitoring.sh: installing promtool (Debian package prometheus)"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	# The package also brings the Prometheus server, which systemd starts:
	# this script only wanted promtool.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
		echo "hack/check-monitoring.sh: stopping and disabling the prometheus service the package started"
		$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
	fi
fi
promtool check rules aegis-alerts.yaml
promtool test rules aegis-alerts.test.yaml
