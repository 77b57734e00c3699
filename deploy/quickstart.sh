#!/usr/bin/env bash
# Quick start: install what is missing, build hvmm, and boot a VM with the bundled guest
# kernel and run its in-guest selftests.
#
#   deploy/quickstart.sh                  boot the bundled guest kernel
#   deploy/quickstart.sh -- ARGS...       pass ARGS to `hvmm run` instead of the defaults
#
# On a machine without a usable /dev/kvm (a VM without nested virtualization), the same
# `hvmm run` runs inside a QEMU/TCG guest that has its own KVM (tests/nested-kvm/README.md):
# slower, but the same VMM and the same guest.
set -euo pipefail
cd "$(dirname "$0")/.."

kvm_usable() { [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]]; }

if kvm_usable; then
  bash deploy/install-deps.sh
else
  bash deploy/install-deps.sh --bench  # QEMU, for the nested KVM
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

args=(--memory 256M --vcpus 2 --cmdline "selftest=all")
if [[ "${1:-}" == "--" ]]; then
  shift
  args=("$@")
fi

if kvm_usable; then
  echo "=== hvmm run ${args[*]} ==="
  exec build/daemon/hvmm run "${args[@]}"
fi
echo "=== /dev/kvm is missing or not usable here: hvmm run ${args[*]}, inside a QEMU/TCG guest with nested KVM ==="
exec bash tests/nested-kvm/run.sh --hvmm build -- "${args[@]}"
