#!/usr/bin/env bash
# The project's test command: lints, Rust tests, interop with independent clients (also
# over TLS), Autobahn. Installs what it needs on first run (.venv-test, .venv-autobahn),
# then is fast.
# Stops at the first failing step; the last line is "N passed, M failed[, K skipped]",
# which CI reads.
#
# Environment: WSLOOP_SERVER_CMD runs another server instead of target/release/wsloop
# ({port} is replaced by a free port); the release build is then skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_CMD='target/release/wsloop --addr 127.0.0.1:{port} --max-message-size 16777216'
SERVER_CMD=${WSLOOP_SERVER_CMD:-$DEFAULT_CMD}
WEBSOCKETS_VERSION=17.4

passed=0 skipped=0 step="" server_pid=""
summary() { echo "$passed passed, $1 failed$( ((skipped)) && echo ", $skipped skipped")"; }
finish() {
  local rc=$?
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  # Autobahn runs still going in the background (a step beside them failed).
  for pid in $(jobs -p); do
    pkill -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    echo "FAILED: $step (exit code $rc)"
    summary 1
  fi
}
trap finish EXIT
# Each step says how long it took (and at which second of the run it ended), so the
# slow ones are plain in a CI log.
begin() { step=$1 step_start=$SECONDS; echo "==> $step"; }
ok() { passed=$((passed + 1)); echo "ok: $step ($((SECONDS - step_start)) s, at ${SECONDS} s)"; }

begin "cargo fmt"
# A fresh toolchain may lack the components; adding them is a no-op when present.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check
ok

begin "cargo clippy"
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets -- -D warnings
ok

begin "cargo test"
# The cluster tests start their own redis-server (Debian's package).
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
# The load generator's tests also drive peer servers that are not ours; the uWebSockets one
# is C++ (Debian's g++).
command -v c++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++; }
scripts/build-peers.sh
cargo test --workspace
ok

begin "fuzz"
# Every cargo-fuzz target for a short, fixed number of runs from the committed seeds.
scripts/fuzz.sh
ok

begin "interop setup"
if ! .venv-test/bin/python -c "import sys, websockets; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
  [[ -x .venv-test/bin/python ]] || python3 -m venv .venv-test
  .venv-test/bin/pip install -q --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
fi
if ! command -v node >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
[[ -d scripts/node/node_modules/ws ]] || (cd scripts/node && npm ci --silent --no-audit --no-fund)
[[ -n ${WSLOOP_SERVER_CMD:-} ]] || cargo build --release --bin wsloop
ok

# Starts the server with extra flags on a free port; sets server_pid and port.
start_server() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local cmd="${SERVER_CMD//\{port\}/$port} $*"
  mkdir -p target
  bash -c "exec $cmd" >target/interop-server.log 2>&1 &
  server_pid=$!
  for ((i = 0; ; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    if ! kill -0 "$server_pid" 2>/dev/null || ((i == 100)); then
      echo "server did not start listening on port $port: $cmd"
      tail -20 target/interop-server.log
      exit 1
    fi
    sleep 0.1
  done
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# Python websockets without and with permessage-deflate, and Node ws with it, against
# each compression mode.
for mode in shared dedicated; do
  begin "interop, $mode compression (python websockets, node ws)"
  [[ -n ${WSLOOP_SERVER_CMD:-} ]] && flags="" || flags="--compression $mode"
  start_server $flags
  timeout 120 .venv-test/bin/python scripts/interop_python.py "ws://127.0.0.1:$port"
  timeout 120 .venv-test/bin/python scripts/interop_python.py "ws://127.0.0.1:$port" --deflate
  timeout 120 node scripts/node/interop.js "ws://127.0.0.1:$port"
  stop_server
  ok
done

# Headless Chromium (Debian's package, driven by playwright-core): the admin page live,
# and a browser's WebSocket (deflate, sizes, subprotocol, close code, origin).
begin "browser (headless chromium, playwright-core)"
if [[ -z ${WSLOOP_SERVER_CMD:-} ]]; then
  command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
  [[ -d scripts/browser/node_modules/playwright-core ]] || (cd scripts/browser && npm ci --silent --no-audit --no-fund)
  start_server --admin-token browser-test --subprotocols chat.v1
  mkdir -p target/browser
  timeout 180 node scripts/browser/browser_test.js "http://127.0.0.1:$port" browser-test target/browser/admin.png
  stop_server
  ok
else
  echo "skipped: the browser test drives wsloop's own admin routes and flags"
  skipped=$((skipped + 1))
fi

# wss:// with a certificate made for the run (rcgen): Python websockets trusting it, Node
# ws trusting it (NODE_EXTRA_CA_CERTS), and Chromium told to accept it; then Python and
# Node again with inline dispatch, whose replies are encrypted from the reply window.
begin "interop over TLS (python websockets, node ws, headless chromium; inline too)"
if [[ -z ${WSLOOP_SERVER_CMD:-} ]]; then
  cargo run -q --example tls_cert -- target/tls
  export NODE_EXTRA_CA_CERTS=$PWD/target/tls/cert.pem
  start_server --tls-cert target/tls/cert.pem --tls-key target/tls/key.pem \
    --admin-token browser-test --subprotocols chat.v1
  timeout 120 .venv-test/bin/python scripts/interop_python.py "wss://127.0.0.1:$port" --ca target/tls/cert.pem
  timeout 120 .venv-test/bin/python scripts/interop_python.py "wss://127.0.0.1:$port" --ca target/tls/cert.pem --deflate
  timeout 120 node scripts/node/interop.js "wss://127.0.0.1:$port"
  timeout 180 node scripts/browser/browser_test.js "https://127.0.0.1:$port" browser-test target/browser/admin-tls.png
  stop_server
  start_server --tls-cert target/tls/cert.pem --tls-key target/tls/key.pem --dispatch inline
  timeout 120 .venv-test/bin/python scripts/interop_python.py "wss://127.0.0.1:$port" --ca target/tls/cert.pem
  timeout 120 .venv-test/bin/python scripts/interop_python.py "wss://127.0.0.1:$port" --ca target/tls/cert.pem --deflate
  timeout 120 node scripts/node/interop.js "wss://127.0.0.1:$port"
  stop_server
  unset NODE_EXTRA_CA_CERTS
  ok
else
  echo "skipped: TLS interop starts wsloop with its own TLS flags"
  skipped=$((skipped + 1))
fi

# The core suite in both dispatch modes, wsloop's client role, and the compression cases
# (12.*, 13.*) against each deflate mode and for the client role. wstest is the slow side,
# one process a run and a core at most: a compression run takes about 12 minutes with a
# core to itself. So the three compression runs start first, in the background, and the
# three short runs go one after the other beside them, on what is left of the two cores.
autobahn_step() {
  begin "autobahn $1"
  step_start=$3
  cat "target/autobahn-$1.out"
  if grep -q "^AUTOBAHN SKIPPED" "target/autobahn-$1.out"; then
    skipped=$((skipped + 1))
  elif [[ $2 -eq 0 ]]; then
    ok
  else
    exit 1 # the EXIT trap names the step and prints the summary
  fi
}
cargo build --release --bin wsloop --example autobahn_client
scripts/autobahn.sh install
compression_start=$SECONDS
declare -A compression_pid
for mode in shared dedicated client-deflate-full; do
  scripts/autobahn.sh "$mode" >"target/autobahn-$mode.out" 2>&1 &
  compression_pid[$mode]=$!
done
for mode in core core-inline client; do
  start=$SECONDS
  scripts/autobahn.sh "$mode" >"target/autobahn-$mode.out" 2>&1 && status=0 || status=$?
  autobahn_step "$mode" "$status" "$start"
done
for mode in shared dedicated client-deflate-full; do
  wait "${compression_pid[$mode]}" && status=0 || status=$?
  autobahn_step "$mode" "$status" "$compression_start"
done

summary 0
