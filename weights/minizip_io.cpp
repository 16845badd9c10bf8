#include "weights/minizip_io.h"

#include <cstring>

namespace gpen {

namespace {
MinizipMemoryFile& file_of(voidpf self) { return *static_cast<MinizipMemoryFile*>(self); }
}  // namespace

MinizipMemoryFile::MinizipMemoryFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}

MinizipMemoryFile::MinizipMemoryFile() : writable_(true) {}

zlib_filefunc64_def MinizipMemoryFile::functions() {
  zlib_filefunc64_def f;
  f.zopen64_file = &MinizipMemoryFile::open;
  f.zread_file = &MinizipMemoryFile::read;
  f.zwrite_file = &MinizipMemoryFile::write;
  f.ztell64_file = &MinizipMemoryFile::tell;
  f.zseek64_file = &MinizipMemoryFile::seek;
  f.zclose_file = &MinizipMemoryFile::close;
  f.zerror_file = &MinizipMemoryFile::error;
  f.opaque = this;
  return f;
}

// The stream handle minizip passes back is the file itself; the name is ignored.
voidpf MinizipMemoryFile::open(voidpf self, const void*, int) {
  file_of(self).pos_ = 0;
  return self;
}

// Short reads at the end, as from a real file: minizip turns them into "truncated" errors.
uLong MinizipMemoryFile::read(voidpf self, voidpf, void* buf, uLong n) {
  MinizipMemoryFile& f = file_of(self);
  const uint64_t available = f.pos_ < f.size() ? f.size() - f.pos_ : 0;
  const uLong count = n < available ? n : uLong(available);
  const uint8_t* src = f.writable_ ? f.written_.data() : f.data_;
  if (count) std::memcpy(buf, src + f.pos_, count);
  f.pos_ += count;
  return count;
}

uLong MinizipMemoryFile::write(voidpf self, voidpf, const void* buf, uLong n) {
  MinizipMemoryFile& f = file_of(self);
  if (!f.writable_) return 0;
  if (f.pos_ + n > f.written_.size()) f.written_.resize(size_t(f.pos_ + n));
  if (n) std::memcpy(f.written_.data() + f.pos_, buf, n);
  f.pos_ += n;
  return n;
}

ZPOS64_T MinizipMemoryFile::tell(voidpf self, voidpf) { return file_of(self).pos_; }

// A position past the end is refused (-1): a damaged directory cannot send reads astray.
long MinizipMemoryFile::seek(voidpf self, voidpf, ZPOS64_T offset, int origin) {
  MinizipMemoryFile& f = file_of(self);
  uint64_t base = 0;
  if (origin == ZLIB_FILEFUNC_SEEK_CUR) base = f.pos_;
  else if (origin == ZLIB_FILEFUNC_SEEK_END) base = f.size();
  else if (origin != ZLIB_FILEFUNC_SEEK_SET) return -1;
  uint64_t target;
  if (__builtin_add_overflow(base, uint64_t(offset), &target) || target > f.size()) return -1;
  f.pos_ = target;
  return 0;
}

int MinizipMemoryFile::close(voidpf, voidpf) { return 0; }

int MinizipMemoryFile::error(voidpf, voidpf) { return 0; }

}  // namespace gpen
