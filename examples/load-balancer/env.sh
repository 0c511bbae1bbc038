# The addresses of the example (sourced by run.sh and rolling-restart.sh). Each can be set in
# the environment instead; RUN_DIR holds the servers' pid and log files.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export LB_HOST="${LB_HOST:-127.0.0.1}"
export LB_HTTP_PORT="${LB_HTTP_PORT:-8080}"
export LB_TCP_PORT="${LB_TCP_PORT:-9080}"
export LB_STATS_PORT="${LB_STATS_PORT:-8404}"
for i in 1 2 3; do
  export "S${i}_HOST=$(eval echo "\${S${i}_HOST:-127.0.0.1}")"
  export "S${i}_HTTP=$(eval echo "\${S${i}_HTTP:-808$i}")"
  export "S${i}_TCP=$(eval echo "\${S${i}_TCP:-908$i}")"
  export "S${i}_ADMIN=$(eval echo "\${S${i}_ADMIN:-958$i}")"
done
RUN_DIR="${RUN_DIR:-$here/run}"
# deno and the CLI: the repository's own (scripts/deno installs Deno on first use).
DENO="${DENO:-$root/scripts/deno}"
ziggurat() { "$DENO" run -A "$root/cli.ts" "$@"; }

# start_server N: server sN in the background (daemonized), with its pid and log files.
start_server() {
  local i="$1" host http tcp admin
  host="$(eval echo "\$S${i}_HOST")"
  http="$(eval echo "\$S${i}_HTTP")"
  tcp="$(eval echo "\$S${i}_TCP")"
  admin="$(eval echo "\$S${i}_ADMIN")"
  mkdir -p "$RUN_DIR"
  "$DENO" run -A "$here/server.ts" --name "s$i" --host "$host" --http "$http" --tcp "$tcp" \
    --admin "$admin" --workers "${WORKERS:-2}" --shutdown-delay "${SHUTDOWN_DELAY:-5}" \
    --daemonize --pid-file "$RUN_DIR/s$i.pid" --log-file "$RUN_DIR/s$i.log"
}

# haproxy_status NAME: "UP UP" when server NAME is up in both backends (from the stats CSV).
haproxy_status() {
  curl -fsS "http://$LB_HOST:$LB_STATS_PORT/stats;csv" |
    awk -F, -v s="$1" '$2 == s { printf "%s ", $18 }' | sed 's/ $//'
}

# wait_until SECONDS WHAT COMMAND…: runs COMMAND every 0.2 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "timed out waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}
