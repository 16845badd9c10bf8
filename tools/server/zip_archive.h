// An in-memory zip of named files (minizip), for a batch job's result.zip.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gpen::server {

struct NamedBytes {
  std::string name;  // entry name inside the archive (already sanitized by the caller)
  std::vector<uint8_t> bytes;
};

// Entries are stored, not deflated: PNG/JPEG/WebP do not compress further. Throws gpen::Error.
std::vector<uint8_t> make_zip(const std::vector<NamedBytes>& files);

}  // namespace gpen::server
