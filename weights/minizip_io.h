// minizip (zlib's contrib/minizip; Debian libminizip-dev, which also ships libminizip.a for the
// static build) reads and writes zip archives through file functions it is handed. These run it
// over bytes in memory: .pth checkpoints are read from a mapped file or a buffer, and the server
// builds a job's result.zip without touching the disk.
//
// Headers are included as <minizip/...>: minizip's pkg-config -I would let its zip.h shadow
// other libraries' headers of the same name.
#pragma once
#include <minizip/ioapi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gpen {

// One in-memory "file" for one unzFile or zipFile. minizip keeps a pointer to it: it must stay
// where it is (neither copied nor moved) until unzClose / zipClose.
class MinizipMemoryFile {
 public:
  // Reads `size` bytes at `data` (not copied: they must outlive the archive handle).
  MinizipMemoryFile(const uint8_t* data, size_t size);
  // An empty file that minizip writes, seeking back to patch headers; see written().
  MinizipMemoryFile();
  MinizipMemoryFile(const MinizipMemoryFile&) = delete;
  MinizipMemoryFile& operator=(const MinizipMemoryFile&) = delete;

  // For unzOpen2_64 / zipOpen2_64, which copy it.
  zlib_filefunc64_def functions();
  std::vector<uint8_t>& written() { return written_; }

 private:
  static voidpf open(voidpf self, const void* name, int mode);
  static uLong read(voidpf self, voidpf stream, void* buf, uLong n);
  static uLong write(voidpf self, voidpf stream, const void* buf, uLong n);
  static ZPOS64_T tell(voidpf self, voidpf stream);
  static long seek(voidpf self, voidpf stream, ZPOS64_T offset, int origin);
  static int close(voidpf self, voidpf stream);
  static int error(voidpf self, voidpf stream);

  size_t size() const { return writable_ ? written_.size() : size_; }

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::vector<uint8_t> written_;
  bool writable_ = false;
  uint64_t pos_ = 0;
};

}  // namespace gpen
