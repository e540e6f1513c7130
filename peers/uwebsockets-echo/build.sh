#!/usr/bin/env bash
# Builds the uWebSockets echo peer into target/peers/uwebsockets-echo. The C++ sources come
# from the crate registry (source/Cargo.toml pins them; `cargo fetch` brings them), so this
# needs cargo, a C compiler and a C++20 compiler, and no network but the registry. Plain
# sockets only (no TLS, no zlib): the echo runs need neither.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
out=$repo/target/peers/uwebsockets-echo
cargo fetch --locked --quiet --manifest-path source/Cargo.toml
src=$(cargo metadata --locked --format-version 1 --manifest-path source/Cargo.toml |
  python3 -c 'import json, sys, os
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "libuwebsockets-sys")
print(os.path.join(os.path.dirname(p["manifest_path"]), "uWebSockets"))')
objects=$out/obj
mkdir -p "$objects"
# The flags uWebSockets' own build uses for its examples (build.c, uSockets/Makefile).
for c in "$src"/uSockets/src/*.c "$src"/uSockets/src/eventing/epoll_kqueue.c; do
  ${CC:-cc} -std=c11 -O3 -flto=auto -DLIBUS_NO_SSL -I"$src/uSockets/src" -c "$c" -o "$objects/$(basename "$c" .c).o"
done
${CXX:-c++} -std=c++20 -O3 -march=native -flto=auto -DLIBUS_NO_SSL -DUWS_NO_ZLIB \
  -I"$src/src" -I"$src/uSockets/src" echo.cpp "$objects"/*.o -o "$out/uwebsockets-echo"
echo "build: $out/uwebsockets-echo"
