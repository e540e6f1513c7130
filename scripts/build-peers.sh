#!/usr/bin/env bash
# Builds the peer echo servers of ../shared/peers into target/peers (shared/ stays
# untouched): the Rust ones with cargo, Node `ws` with npm into target/peers/node-ws.
# Prints nothing but cargo's and npm's own errors; a missing shared/peers is not an error.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=../shared/peers
if [[ ! -d $peers ]]; then
  echo "build-peers: $peers not found, peers not built"
  exit 0
fi
target=$PWD/target/peers
(cd "$peers" && CARGO_TARGET_DIR=$target cargo build --release --quiet)
if command -v npm >/dev/null; then
  mkdir -p "$target/node-ws"
  cp "$peers/node-ws/package.json" "$peers/node-ws/package-lock.json" "$peers/node-ws/server.js" "$target/node-ws/"
  [[ -d $target/node-ws/node_modules/ws ]] || (cd "$target/node-ws" && npm ci --silent --no-audit --no-fund)
fi
