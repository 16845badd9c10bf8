#include "weights/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace gpen {

namespace {
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};
[[noreturn]] void fail_errno(const std::string& what, const std::string& path) {
  fail("cannot ", what, " '", path, "': ", std::strerror(errno));
}
}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  FdCloser f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail_errno("open", path);
  struct stat st;
  if (::fstat(f.fd, &st) != 0) fail_errno("stat", path);
  if (!S_ISREG(st.st_mode)) fail("cannot open '", path, "': not a regular file");
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size_t(st.st_size);
  if (m->size_ == 0) return m;  // mmap rejects length 0; an empty file has no bytes to map
  // Writable private mapping: in-place edits of borrowed tensors become private copies of pages.
  void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) fail_errno("mmap", path);
  m->data_ = static_cast<uint8_t*>(p);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

std::string read_file_prefix(const std::string& path, size_t n) {
  FdCloser f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail_errno("open", path);
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(f.fd, &out[got], n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail_errno("read", path);
    if (r == 0) break;
    got += size_t(r);
  }
  out.resize(got);
  return out;
}

}  // namespace gpen
