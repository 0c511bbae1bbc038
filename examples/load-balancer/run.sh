#!/usr/bin/env bash
# Starts the example: three Ziggurat servers in the background, then HAProxy in the foreground
# in front of them (Ctrl-C stops HAProxy; "ziggurat stop --pid-file run/sN.pid" each server).
#
#   examples/load-balancer/run.sh
#   curl http://127.0.0.1:8080/                   # through the balancer: which server, which client
#   examples/load-balancer/rolling-restart.sh     # meanwhile: every server restarted, none missed
set -euo pipefail
source "$(dirname "$0")/env.sh"
command -v haproxy >/dev/null || { echo "needs HAProxy: apt-get install haproxy" >&2; exit 1; }
for i in 1 2 3; do start_server "$i"; done
exec haproxy -f "$here/haproxy.cfg" -db
