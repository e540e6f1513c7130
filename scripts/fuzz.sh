#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a short, fixed number of executions: the seeds in
# fuzz/corpus/<target>/ first, then mutations of them. Installs cargo-fuzz (crates.io)
# when missing; needs the nightly toolchain. Exits non-zero at the first crash, whose
# input libFuzzer writes to fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [RUNS_SCALE]   (default 1: the CI budget; 10 runs 10 times as many)
# New inputs go to a temporary corpus, so the committed seeds stay as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${1:-1}
# target, executions at scale 1, largest input (bytes). Sized so that a fresh build plus
# all runs stays under about 3 minutes on 2 cores; see fuzz/README.md.
targets=(
  "frame_decoder 300000 2048"
  "handshake_request 300000 1024"
  "deflate 150000 1024"
  "handshake_response 200000 1024"
  "session 50000 4096"
)

if ! rustup toolchain list | grep '^nightly' >/dev/null; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# No sanitizer: the protocol core is safe Rust but for one UTF-8 block whose promise
# debug assertions (on in these builds) and the targets check; uninstrumented runs are
# about 4 times faster. `cargo +nightly fuzz run -s address TARGET` runs one under ASan.
fuzz=(cargo +nightly fuzz)
"${fuzz[@]}" build --sanitizer none

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for entry in "${targets[@]}"; do
  read -r name runs max_len <<<"$entry"
  runs=$((runs * scale))
  mkdir -p "$corpus/$name"
  start=$SECONDS
  "${fuzz[@]}" run --sanitizer none "$name" "$corpus/$name" "fuzz/corpus/$name" -- \
    -runs="$runs" -max_len="$max_len" -print_final_stats=1 2>"$corpus/$name.log" || {
    tail -n 40 "$corpus/$name.log"
    echo "fuzz: $name crashed; the input is in fuzz/artifacts/$name/"
    exit 1
  }
  echo "fuzz: $name ok, $runs runs in $((SECONDS - start)) s"
done
