#!/usr/bin/env bash
# Install every Debian package hvmm needs to build, test and benchmark.
#
# Idempotent and quiet when everything is already present. Run as root (or with
# sudo available). `--bench` also installs the side-by-side references the
# benchmarks compare against (QEMU).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache clang-format
  linux-libc-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev libcli11-dev libzstd-dev liblz4-dev libxxhash-dev libseccomp-dev
  libtinyxml2-dev  # the stage-2 SVG test parses the picture back
  clang libclang-rt-14-dev
  strace  # Cli.ArgumentErrorsComeBeforeKvm traces what hvmm opens
  openssl  # DaemonService.TcpWithTls makes a throwaway certificate
  # The Python client of tests/e2e/python (Debian's python3; its stubs come from protoc and
  # protobuf-compiler-grpc's grpc_python_plugin: python3-grpc-tools' protoc 3.5 cannot read
  # proto3 `optional`).
  python3 python3-grpcio python3-protobuf
  # tests/deploy: the manifests' schema check and the unit's (systemd-analyze).
  python3-yaml python3-jsonschema systemd
)
# --bench: QEMU, the side-by-side reference of the benchmarks, which also runs the KVM tests
# on machines without /dev/kvm (tests/nested-kvm/run.sh; it also needs gzip, dpkg-deb and
# apt-get, which every Debian has, and fetches its guest kernel and busybox itself).
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(qemu-system-x86 gzip)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "deploy: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
