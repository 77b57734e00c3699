#!/usr/bin/env bash
# The runtime stage of deploy/container/Dockerfile installs every Debian package whose shared
# libraries the built programs link: `ldd` of hvmmd, hvmm-vm, hvmm and hvmm-client, each
# library's package by `dpkg -S`, against the Dockerfile's apt-get list plus what
# debian:12-slim has already. A new dependency of the programs that the image would lack
# fails here, not at the first start of a pod.
#
#   check_image_libs.sh DOCKERFILE PROGRAM...
set -euo pipefail

dockerfile="${1:?usage: check_image_libs.sh DOCKERFILE PROGRAM...}"
shift
if ! command -v dpkg >/dev/null 2>&1 || ! command -v ldd >/dev/null 2>&1; then
  echo "SKIPPED: dpkg or ldd is missing (a Debian host is needed to name the packages)"
  exit 77
fi
# In debian:12-slim already (Priority: required).
base="libc6 libgcc-s1 libstdc++6 zlib1g"
# The runtime stage's list: the words after `--no-install-recommends` up to the `&&`, in the
# last FROM stage.
listed=$(awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END {printf "%s", stage}' "$dockerfile" |
  tr -d '\\' | tr '\n' ' ' | sed -nE 's/.*--no-install-recommends ([^&]*)&&.*/\1/p')
if [[ -z "$listed" ]]; then
  echo "FAILED: no apt-get install list in the last stage of $dockerfile"
  exit 1
fi

# Every library the programs link, then their packages in one dpkg query (each query reads the
# whole package database: one per library takes minutes).
libraries=$(for program in "$@"; do ldd "$program" | awk '/=> \//{print $3}'; done | sort -u)
patterns=$(for library in $libraries; do echo "*/$(basename "$library")"; done)
# shellcheck disable=SC2086
owners=$(dpkg -S $patterns 2>/dev/null || true)
needed=""
for library in $libraries; do
  # The owner of this very file: /lib and /usr/lib are one directory (merged /usr), and
  # dpkg knows each file under one of the two names.
  real=$(readlink -f "$library")
  package=$(awk -v a="${library#/usr}" -v b="${real#/usr}" '{
      path = $NF; sub(/^\/usr/, "", path)
      if (path == a || path == b) { sub(/:.*/, "", $1); sub(/,.*/, "", $1); print $1; exit }
    }' <<<"$owners")
  if [[ -z "$package" ]]; then
    echo "FAILED: the programs link $library, which no Debian package owns"
    exit 1
  fi
  needed+=" $package"
done
missing=0
for package in $(tr ' ' '\n' <<<"$needed" | sort -u); do
  if ! grep -qwF -- "$package" <<<"$listed $base"; then
    echo "the image lacks $package (linked by the programs)"
    missing=1
  fi
done
if [[ $missing -ne 0 ]]; then
  echo "FAILED: add the packages above to the runtime stage of $dockerfile"
  exit 1
fi
echo "PASSED: the runtime stage installs every package the programs link:" \
  "$(tr ' ' '\n' <<<"$needed" | sort -u | tr '\n' ' ')"
