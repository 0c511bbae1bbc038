#!/usr/bin/env bash
# Restarts the example's servers one after another, each only once the one before is back in
# rotation: a server told to stop fails its health check at once and serves on for its
# shutdownDelay, which HAProxy's checks (every 500 ms) need to take it out; once it is gone it is
# started again, and the next one waits until HAProxy has it UP in both backends.
#
#   examples/load-balancer/rolling-restart.sh [s1 s2 s3]
set -euo pipefail
source "$(dirname "$0")/env.sh"
up() { [ "$(haproxy_status "$1")" = "UP UP" ]; }
for name in "${@:-s1 s2 s3}"; do
  for server in $name; do
    i="${server#s}"
    echo "$server: stopping (pid $(cat "$RUN_DIR/$server.pid"))"
    ziggurat stop --pid-file "$RUN_DIR/$server.pid" --timeout 60
    start_server "$i"
    wait_until 60 "$server back in rotation" up "$server"
    echo "$server: back in rotation"
  done
done
