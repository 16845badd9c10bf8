// The web page's files (tools/web/*), embedded in the binary at build time by
// tools/web/embed_assets.cmake, so `gpen serve` needs no files beside it and no CDN.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace gpen::server {

struct WebAsset {
  const char* name;  // file name in tools/web, e.g. "index.html"
  const unsigned char* data;
  size_t size;
};

const std::vector<WebAsset>& web_assets();  // defined in the generated web_assets.cpp

}  // namespace gpen::server
