#!/usr/bin/env bash
# Builds the peer echo servers of peers/ into target/peers: the Rust ones with cargo (their
# own workspace and lockfile), uWebSockets with its own script (C++ sources from the crate
# registry), Node `ws` with `npm ci` into target/peers/node-ws. Without npm the Node peer is
# skipped with a line saying so. `wsloop-loadtest suite` runs the same
# steps itself; this script is for the tests and for building by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$PWD/target/peers
CARGO_TARGET_DIR=$target cargo build --release --quiet --locked --manifest-path peers/Cargo.toml
peers/uwebsockets-echo/build.sh >/dev/null
if command -v npm >/dev/null; then
  mkdir -p "$target/node-ws"
  cp peers/node-ws/package.json peers/node-ws/package-lock.json peers/node-ws/server.js "$target/node-ws/"
  [[ -d $target/node-ws/node_modules/ws ]] || (cd "$target/node-ws" && npm ci --silent --no-audit --no-fund)
else
  echo "build-peers: npm not found, the Node ws peer is not built"
fi
