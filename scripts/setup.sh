#!/usr/bin/env bash
# Installs the Debian packages gpen needs to build, test and make reference fixtures.
# Safe to run again. Needs root (or sudo) and Debian's package registry.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential cmake pkg-config clang
  libeigen3-dev libstb-dev catch2 libminizip-dev libzip-dev zlib1g-dev nlohmann-json3-dev libcli11-dev
  libpng-dev libjpeg62-turbo-dev libwebp-dev libtiff-dev libheif-dev liblcms2-dev libcurl4-openssl-dev libssl-dev ca-certificates libcpp-httplib-dev
  libbenchmark-dev
  python3 python3-numpy python3-torch python3-pil python3-onnx
  chromium nodejs
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm: bundled with some nodejs builds (NodeSource); Debian's nodejs needs its own package.
if ! command -v npm >/dev/null; then
  $SUDO apt-get install -y -qq --no-install-recommends npm
fi
