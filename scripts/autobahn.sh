#!/usr/bin/env bash
# Autobahn TestSuite (wstest fuzzingclient) against the wsloop echo server.
#
# Installs wstest into .venv-autobahn when missing (it runs on Python 2.7 only), starts the
# server, runs every case but 12.* and 13.* (permessage-deflate, not negotiated yet; see
# scripts/autobahn/fuzzingclient.json) and judges index.json with scripts/autobahn_check.py.
#
# Environment:
#   WSLOOP_SERVER_CMD    server command, {port} is replaced by a free port
#                        (default: target/release/wsloop --addr 127.0.0.1:{port} --max-message-size 16777216)
#   AUTOBAHN_PYTHON2     Python 2.7 interpreter (default: ~/.pyenv/versions/2.7.18/bin/python2.7)
#   AUTOBAHN_REPORT_DIR  where the report goes, wiped first (default: target/autobahn)
#   AUTOBAHN_CHECK_ARGS  extra arguments for autobahn_check.py, e.g. --write-expected
set -euo pipefail
cd "$(dirname "$0")/.."

# Which part of the suite: `core` (everything but compression, 12.* and 13.*), or the
# compression cases against one permessage-deflate mode: `shared` or `dedicated`.
# `client` and `client-deflate` turn it around: wstest runs as fuzzingserver and wsloop's
# client role (examples/autobahn_client.rs) connects to it, without and with
# permessage-deflate. `client-deflate-full` runs the whole compression part (12.*, 13.*:
# 216 cases; the test command runs it beside the server's two compression runs);
# `client-deflate` a quick sample that keeps every negotiation variant: the six smallest
# cases of each 13.* group (every window size and context-takeover answer) and the three
# smallest of each 12.* group (about 90 s).
MODE=${1:-core}
ROLE=server
case $MODE in
  # Only make sure wstest is installed (runs that start at once must not race to install it).
  install) CASES='[]' EXCLUDE='[]' FLAGS='' ;;
  core) CASES='["*"]' EXCLUDE='["12.*", "13.*"]' FLAGS='' ;;
  # The same cases with handlers on the reactor thread, whose replies take another path
  # (framed straight into the reactor's write buffer, src/outbox.rs).
  core-inline) CASES='["*"]' EXCLUDE='["12.*", "13.*"]' FLAGS='--dispatch inline' ;;
  shared | dedicated) CASES='["12.*", "13.*"]' EXCLUDE='[]' FLAGS="--compression $MODE" ;;
  client) ROLE=client CASES='["*"]' EXCLUDE='["12.*", "13.*"]' FLAGS='' ;;
  client-deflate)
    ROLE=client FLAGS='--compression' EXCLUDE='[]'
    # Exact ids: wstest matches a pattern with `*` as a prefix, so 12.1.1 would bring 12.1.1x.
    CASES=$(python3 -c 'import json; print(json.dumps(
      ["12.%d.%d" % (g, n) for g in range(1, 6) for n in range(1, 4)]
      + ["13.%d.%d" % (g, n) for g in range(1, 8) for n in range(1, 7)]))')
    ;;
  client-deflate-full) ROLE=client CASES='["12.*", "13.*"]' EXCLUDE='[]' FLAGS='--compression' ;;
  *)
    echo "usage: scripts/autobahn.sh [install|core|core-inline|shared|dedicated|client|client-deflate|client-deflate-full]" >&2
    exit 2
    ;;
esac
EXPECTED=scripts/autobahn/expected-${MODE%-inline}.json

DEFAULT_CMD="target/release/wsloop --addr 127.0.0.1:{port} --max-message-size 16777216 $FLAGS"
SERVER_CMD=${WSLOOP_SERVER_CMD:-$DEFAULT_CMD}
PY2=${AUTOBAHN_PYTHON2:-$HOME/.pyenv/versions/2.7.18/bin/python2.7}
REPORT_DIR=${AUTOBAHN_REPORT_DIR:-target/autobahn/$MODE}
VENV=.venv-autobahn

# The full resolved set, pinned, so a new release on PyPI can never change what we run.
# These are the newest releases that still support Python 2.7, as pip 20.3 resolved them
# for `pip install autobahntestsuite` (Twisted 20+, cryptography 3.4+, pyOpenSSL 20+,
# attrs 22+ ... are Python 3 only). wsaccel and ujson build C extensions: needs gcc.
PINS=(
  autobahntestsuite==25.10.1 autobahn==0.10.9 txaio==2.1.0 wsaccel==0.6.6 ujson==2.0.3
  Twisted==19.10.0 zope.interface==4.6.0 Automat==22.10.0 attrs==21.4.0 constantly==15.1.0
  hyperlink==21.0.0 idna==2.10 incremental==16.10.1 PyHamcrest==1.10.1 typing==3.10.0.0
  pyOpenSSL==19.1.0 cryptography==3.3.2 cffi==1.15.1 pycparser==2.21 enum34==1.1.10
  ipaddress==1.0.23 service-identity==18.1.0 pyasn1==0.5.1 pyasn1-modules==0.3.0
  klein==17.10.0 Werkzeug==1.0.1 Jinja2==2.11.3 MarkupSafe==1.1.1 six==1.16.0
  unittest2==1.1.0 traceback2==1.4.0 linecache2==1.0.0 argparse==1.4.0 setuptools==44.0.0
)

# Take the first candidate that really runs Python 2.7 (a pyenv shim on PATH may not).
for py in "$PY2" python2.7 ""; do
  [[ -n $py ]] && "$py" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null && break
done
PY2=$py
if [[ -z $PY2 ]]; then
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  echo "AUTOBAHN SKIPPED: no Python 2.7 (set AUTOBAHN_PYTHON2 or install 2.7.18 with pyenv)"
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  exit 0
fi

# Reinstall only when the venv is missing or was made from other pins.
if [[ ! -x $VENV/bin/wstest || "$(cat "$VENV/.pins" 2>/dev/null)" != "${PINS[*]}" ]]; then
  echo "autobahn: installing Autobahn TestSuite into $VENV (about a minute)"
  # virtualenv 20.15.1 is the last one that can still create Python 2.7 environments.
  [[ -x .venv-test/bin/python ]] || python3 -m venv .venv-test
  .venv-test/bin/pip install -q --disable-pip-version-check virtualenv==20.15.1
  rm -rf "$VENV"
  .venv-test/bin/virtualenv -q -p "$PY2" "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-python-version-warning "${PINS[@]}"
  echo "${PINS[*]}" >"$VENV/.pins"
fi
[[ $MODE == install ]] && exit 0

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts on 127.0.0.1:$1 while process $2 lives (10 s at most).
wait_for_port() {
  for ((i = 0; ; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    if ! kill -0 "$2" 2>/dev/null || ((i == 100)); then
      return 1
    fi
    sleep 0.1
  done
}

if [[ $ROLE == client ]]; then
  cargo build --release --example autobahn_client
  rm -rf "$REPORT_DIR"
  mkdir -p "$REPORT_DIR"
  REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
  port=$(free_port)
  python3 - "$REPORT_DIR" "ws://127.0.0.1:$port" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
report_dir, url, cases, exclude = sys.argv[1:]
spec = {"url": url, "outdir": report_dir, "cases": json.loads(cases),
        "exclude-cases": json.loads(exclude), "exclude-agent-cases": {}}
json.dump(spec, open(report_dir + "/spec.json", "w"), indent=2)
EOF
  # `-u 0`: no report web server, whose fixed port (8080) two client runs at once would share.
  (cd "$REPORT_DIR" && exec "$OLDPWD/$VENV/bin/wstest" -m fuzzingserver -u 0 -s spec.json >wstest.log 2>&1) &
  wstest_pid=$!
  trap 'kill $wstest_pid 2>/dev/null || true; wait $wstest_pid 2>/dev/null || true' EXIT
  if ! wait_for_port "$port" $wstest_pid; then
    echo "autobahn: wstest fuzzingserver did not start on port $port"
    tail -20 "$REPORT_DIR/wstest.log"
    exit 1
  fi
  echo "autobahn: wsloop's client against wstest fuzzingserver (log: $REPORT_DIR/client.log)"
  start=$SECONDS
  # shellcheck disable=SC2086 # FLAGS is a list of flags
  if ! timeout 2400 target/release/examples/autobahn_client "ws://127.0.0.1:$port" \
    --agent wsloop-client $FLAGS >"$REPORT_DIR/client.log" 2>&1; then
    echo "autobahn: the client failed or timed out after $((SECONDS - start))s"
    tail -20 "$REPORT_DIR/client.log"
    exit 1
  fi
  echo "autobahn: the client run took $((SECONDS - start))s, report: $REPORT_DIR/index.html"
  # shellcheck disable=SC2086 # AUTOBAHN_CHECK_ARGS is a list of flags
  python3 scripts/autobahn_check.py --expected "$EXPECTED" ${AUTOBAHN_CHECK_ARGS:-} "$REPORT_DIR/index.json"
  exit
fi

# Build the server only when it is ours (cargo is a fast no-op when up to date).
[[ -n ${WSLOOP_SERVER_CMD:-} ]] || cargo build --release --bin wsloop

rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)

# Start the server on a free port and wait until it accepts connections.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cmd=${SERVER_CMD//\{port\}/$port}
bash -c "exec $cmd" >"$REPORT_DIR/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true' EXIT
for ((i = 0; ; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  if ! kill -0 $server_pid 2>/dev/null || ((i == 100)); then
    echo "autobahn: server did not start listening on port $port: $cmd"
    tail -20 "$REPORT_DIR/server.log"
    exit 1
  fi
  sleep 0.1
done

python3 - "$REPORT_DIR" "ws://127.0.0.1:$port" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
report_dir, url, cases, exclude = sys.argv[1:]
spec = json.load(open("scripts/autobahn/fuzzingclient.json"))
spec["outdir"] = report_dir
spec["servers"][0]["url"] = url
spec["cases"] = json.loads(cases)
spec["exclude-cases"] = json.loads(exclude)
json.dump(spec, open(report_dir + "/spec.json", "w"), indent=2)
EOF

echo "autobahn: wstest fuzzingclient against $cmd (log: $REPORT_DIR/wstest.log)"
start=$SECONDS
# A timeout so a server that hangs a case fails the run instead of stalling CI forever;
# 40 minutes, as three compression runs sharing two cores took 19.
if ! (cd "$REPORT_DIR" && timeout 2400 "$OLDPWD/$VENV/bin/wstest" -m fuzzingclient -s spec.json >wstest.log 2>&1); then
  echo "autobahn: wstest failed or timed out after $((SECONDS - start))s"
  tail -20 "$REPORT_DIR/wstest.log"
  exit 1
fi
echo "autobahn: wstest took $((SECONDS - start))s, report: $REPORT_DIR/index.html"

# shellcheck disable=SC2086 # AUTOBAHN_CHECK_ARGS is a list of flags
python3 scripts/autobahn_check.py --expected "$EXPECTED" ${AUTOBAHN_CHECK_ARGS:-} "$REPORT_DIR/index.json"
