#!/usr/bin/env bash
# The programs the tests drive that this project does not build (real clients nobody here
# wrote): installed from Debian's packages when missing, never skipped.
set -euo pipefail

missing=()
need() { # need <command> <Debian package>
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need curl curl
need chromium chromium
need promtool prometheus
need systemd-socket-activate systemd
need haproxy haproxy
need wrk wrk
need nginx nginx
# nginx's stream module (examples/load-balancer/nginx.conf), a package of its own.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages) for the tests" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
