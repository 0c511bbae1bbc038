#!/usr/bin/env bash
# Pinned toolchain, installed on first use into .tools/ (git-ignored).
# Sourced by scripts/zig, scripts/deno and scripts/bun; each prints nothing on the fast path.
set -euo pipefail

ZIG_VERSION=0.15.2   # PyPI package "ziglang"
DENO_VERSION=2.9.6   # npm package "deno"
BUN_VERSION=1.3.5    # npm package "bun" (benchmark peer only)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

ensure_zig() {
  ZIG="$TOOLS/zig-$ZIG_VERSION/ziglang/zig"
  if [ ! -x "$ZIG" ]; then
    echo "installing zig $ZIG_VERSION into .tools/ (first use)" >&2
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$TOOLS/zig-$ZIG_VERSION" "ziglang==$ZIG_VERSION" >&2
  fi
}

ensure_deno() {
  DENO="$TOOLS/deno-$DENO_VERSION/node_modules/deno/deno"
  if [ ! -x "$DENO" ]; then
    echo "installing deno $DENO_VERSION into .tools/ (first use)" >&2
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/deno-$DENO_VERSION" "deno@$DENO_VERSION" >&2
  fi
}

ensure_bun() {
  BUN="$TOOLS/bun-$BUN_VERSION/node_modules/bun/bin/bun.exe"
  if [ ! -x "$BUN" ]; then
    echo "installing bun $BUN_VERSION into .tools/ (first use)" >&2
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/bun-$BUN_VERSION" "bun@$BUN_VERSION" >&2
  fi
}
