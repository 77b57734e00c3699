#!/usr/bin/env bash
# Quick start: install what is missing, build hvmm, and boot a VM with the bundled guest
# kernel and run its in-guest selftests.
#
#   deploy/quickstart.sh                  boot the bundled guest kernel
#   deploy/quickstart.sh -- ARGS...       pass ARGS to `hvmm run` instead of the defaults
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

if [[ "${1:-}" == "--" ]]; then
  shift
  exec build/daemon/hvmm run "$@"
fi

echo "=== hvmm run (bundled guest kernel, 256 MiB, 2 vCPUs, selftests) ==="
build/daemon/hvmm run --memory 256M --vcpus 2 --cmdline "selftest=all"
