// A whole file mapped into memory, for zero-copy readers (safetensors) and for parsers that want
// the bytes in one piece (legacy .pth). The mapping is private copy-on-write: tensors that borrow it
// may be modified in place without touching the file. Keep the shared_ptr alive as long as any
// pointer into the data is in use (tensors hold it as their keepalive).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace gpen {

class MappedFile {
 public:
  // Throws gpen::Error "cannot open 'path': <reason>".
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Up to `n` bytes from the start of a file (fewer if it is shorter); throws if it cannot be read.
std::string read_file_prefix(const std::string& path, size_t n);

}  // namespace gpen
