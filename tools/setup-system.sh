#!/usr/bin/env bash
# Install the Debian packages the toolchain runs (tools/apt-packages.txt) when a binary is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for bin in promtool vmagent vmalert victoria-metrics luajit cloud-init; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)
[ ${#need[@]} -eq 0 ] && exit 0
echo "setup: missing ${need[*]}; installing Debian packages" >&2
packages=$(grep -v '^\s*#' tools/apt-packages.txt | xargs)
command -v kubectl >/dev/null 2>&1 || packages="$packages kubernetes-client"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to apt-get install: $packages" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
