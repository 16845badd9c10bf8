#!/usr/bin/env bash
# Fetches what the fully static build (-DGPEN_STATIC=ON) needs beyond scripts/setup.sh: the
# single-header cpp-httplib. Debian's libcpp-httplib-dev splits httplib.h into a header plus a
# shared library and ships no .a; Debian's *source* package of the same version (0.11.4 on
# Debian 12) holds the single header, which compiles into the binary. `apt-get source` applies
# Debian's patches, so the header carries the same security fixes as Debian's own package.
# Nothing is installed and the system's apt configuration is left alone: a private sources list
# and apt state under DIR point apt at Debian's deb-src.
#
#   scripts/fetch_static_deps.sh build-static-deps
#   cmake -S . -B build-static -DGPEN_STATIC=ON -DGPEN_HTTPLIB_HEADER_DIR=$PWD/build-static-deps/httplib
#
# DIR must be outside the source tree or ignored by git (build*/ is): the header is never
# committed. Needs apt-get, dpkg-source (dpkg-dev, in build-essential) and Debian's package
# registry. Safe to run again. GPEN_DEBIAN_SUITE overrides the suite (default: this system's).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
HEADER="$DIR/httplib/httplib.h"
# shellcheck source=/dev/null
SUITE=${GPEN_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}

header_version() { sed -n 's/^#define CPPHTTPLIB_VERSION "\(.*\)"/\1/p' "$1"; }

# The static build must compile against the API the dynamic build uses: say so if they differ.
check_version() {
  local want
  want=$(pkg-config --modversion cpp-httplib 2>/dev/null || true)
  if [ -n "$want" ] && [ "$want" != "$(header_version "$HEADER")" ]; then
    echo "warning: $HEADER is cpp-httplib $(header_version "$HEADER"), the installed one is $want" >&2
  fi
}

if [ -f "$HEADER" ]; then
  echo "cpp-httplib $(header_version "$HEADER"): $HEADER (already there)"
  check_version
  exit 0
fi

APT_STATE="$DIR/apt"
mkdir -p "$APT_STATE/lists/partial" "$APT_STATE/cache/archives/partial"
echo "deb-src http://deb.debian.org/debian $SUITE main" > "$APT_STATE/sources.list"
APT_OPTS=(-o "Dir::Etc::SourceList=$APT_STATE/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$APT_STATE/lists" -o "Dir::Cache=$APT_STATE/cache" -o Debug::NoLocking=1)
apt-get "${APT_OPTS[@]}" -qq update
(cd "$DIR" && apt-get "${APT_OPTS[@]}" -qq source cpp-httplib)

shopt -s nullglob
trees=("$DIR"/cpp-httplib-*/)
if [ ${#trees[@]} -eq 0 ] || [ ! -f "${trees[0]}httplib.h" ]; then
  echo "error: no httplib.h in the cpp-httplib source package unpacked in $DIR" >&2
  exit 1
fi
mkdir -p "$(dirname "$HEADER")"
cp "${trees[0]}httplib.h" "$HEADER"
echo "cpp-httplib $(header_version "$HEADER") (Debian source package, Debian's patches applied): $HEADER"
check_version
