#!/usr/bin/env bash
# Build the edgeskd C runtime into deploy/build (idempotent: re-running only rebuilds what changed).
#   deploy/build.sh [extra cmake -D options]
# Environment: PYTHON (default: the repo's .venv/bin/python, else python3) picks the venv whose onnxruntime and
# openvino wheels provide the runtime libraries; EDGESKD_BUILD_DIR overrides the build folder.
# ONNX Runtime's wheel ships no C headers: they come from Debian's libonnxruntime-dev package, downloaded (not
# installed) into the build folder. Bookworm lacks that package, so it is fetched from Debian trixie through a
# private apt state folder that leaves the system's apt configuration untouched.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${EDGESKD_BUILD_DIR:-$here/build}"
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
deps="$build/_deps"
ort_dev="$deps/onnxruntime-dev"
header="$ort_dev/usr/include/onnxruntime/onnxruntime_c_api.h"

for tool in cmake cc; do
  command -v "$tool" >/dev/null || { echo "build.sh: '$tool' not found; install it (apt-get install cmake gcc)" >&2; exit 3; }
done

fetch_ort_headers() {
  mkdir -p "$deps"
  local deb
  deb="$(ls "$deps"/libonnxruntime-dev_*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    # First the system's own sources (Debian trixie and later carry the package) ...
    (cd "$deps" && apt-get download -q libonnxruntime-dev >/dev/null 2>&1) || true
    deb="$(ls "$deps"/libonnxruntime-dev_*.deb 2>/dev/null | head -n1 || true)"
  fi
  if [ -z "$deb" ]; then
    # ... else trixie's package index in a private apt state folder.
    local apt="$deps/apt"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
      > "$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/none"
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Dir::State::status=/dev/null"
                -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1")
    apt-get "${opts[@]}" -q update >/dev/null
    (cd "$deps" && apt-get "${opts[@]}" -q download libonnxruntime-dev >/dev/null)
    deb="$(ls "$deps"/libonnxruntime-dev_*.deb 2>/dev/null | head -n1 || true)"
  fi
  [ -n "$deb" ] || { echo "build.sh: could not download libonnxruntime-dev (ONNX Runtime C headers)" >&2; exit 4; }
  rm -rf "$ort_dev.tmp" && dpkg-deb -x "$deb" "$ort_dev.tmp" && rm -rf "$ort_dev" && mv "$ort_dev.tmp" "$ort_dev"
}

[ -f "$header" ] || fetch_ort_headers

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" -DEDGESKD_PYTHON="$python" "$@" >/dev/null
cmake --build "$build" -j "${EDGESKD_JOBS:-2}"
