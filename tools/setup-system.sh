#!/usr/bin/env bash
# Install the Debian packages the toolchain runs (tools/apt-packages.txt) when a binary is missing.
# The upstream binaries (vmagent, vmalert, victoria-metrics, promtool, prometheus, kube-apiserver)
# are built from their Go modules by tools/build-upstream.sh, not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for bin in kubectl luajit cloud-init etcd openssl; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
[ ${#need[@]} -eq 0 ] && exit 0
packages=$(grep -v '^\s*#' tools/apt-packages.txt | xargs)
echo "setup: missing ${need[*]}; installing Debian packages: $packages" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to apt-get install: $packages" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
