#!/usr/bin/env bash
# Packs what a GPU session needs into .gpucarry/ (ignored by git; the device tool's `carry`):
# the binaries of BUILD_DIR (built here, with the CUDA module), the shared libraries they need
# beyond glibc/libstdc++ (the GPU machine's image lacks libwebp, cpp-httplib, libcurl's dependencies, ...), the
# real RetinaFace detector and a 1920x1080 photo with exactly one face (made from ../shared).
#
#   tools/bench/pack_gpu_carry.sh [BUILD_DIR=build]
#
# Then: run(command="bash tools/bench/gpu_session.sh", carry=[".gpucarry"]).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B="${1:-build}"
C=.gpucarry
grep -qx "/$C/" .git/info/exclude 2>/dev/null || echo "/$C/" >>.git/info/exclude
rm -rf "$C" && mkdir -p "$C/bin" "$C/lib" "$C/data" "$C/images"
cp "$B/gpen" "$B/gpen_tests" "$B/libgpen_cuda.so" "$C/bin/"
for lib in $(ldd "$B/gpen" "$B/gpen_tests" | awk '/=>/ {print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libstdc++* | libgcc_s* | ld-linux* | libdl.so* | libpthread* | librt.so* | libresolv*) ;;
    *) cp -L "$lib" "$C/lib/" ;;
  esac
done
cp ../shared/weights/retinaface_mobilenet0.25.pth "$C/data/"
cp ../shared/images/*.png ../shared/images/*.jpg "$C/images/"
/usr/bin/python3 tools/bench/make_oneface_photo.py ../shared/images/selfie_child_4032x3024.jpg "$C/data/oneface_1080p.jpg"
"$B/gpen" detect --detector "$C/data/retinaface_mobilenet0.25.pth" "$C/data/oneface_1080p.jpg" | head -1
du -sh "$C"
