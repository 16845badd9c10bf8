// Where `gpen serve` keeps its results: one directory (--outputs), files named like the seed WebUI's
// `outputs_YYYYMMDDHHMMSS.png`, with `_2`, `_3`, ... when that name is taken. Names come from the
// clock only; nothing a client sends ever becomes part of a path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gpen::server {

class OutputStore {
 public:
  // Creates the directory if needed (gpen::Error when it cannot).
  explicit OutputStore(std::string dir);

  // Writes `bytes` under a fresh name with extension `ext` ("png"); returns the file name (no
  // directory). Never overwrites: the name is claimed with link(2), which fails if it exists,
  // and the file appears complete or not at all. Throws gpen::Error on I/O failure.
  std::string save(const std::vector<uint8_t>& bytes, const std::string& ext);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// "outputs_YYYYMMDDHHMMSS" in local time for `unix_seconds`.
std::string output_stem(long long unix_seconds);

}  // namespace gpen::server
