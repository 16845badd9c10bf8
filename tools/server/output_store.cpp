#include "tools/server/output_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace gpen::server {
namespace {

// Writes the whole buffer to a new private temporary file in `dir`; returns its path.
std::string write_temp_file(const std::string& dir, const std::vector<uint8_t>& bytes) {
  std::string tmpl = dir + "/.gpen_tmp_XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) fail("cannot create a file in '", dir, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      fail("cannot write to '", dir, "': ", std::strerror(err));
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    fail("cannot write to '", dir, "': ", std::strerror(errno));
  }
  return tmpl;
}

}  // namespace

std::string output_stem(long long unix_seconds) {
  const std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return std::string("outputs_") + buf;
}

OutputStore::OutputStore(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) fail("cannot create the outputs directory '", dir_, "': ", ec.message());
}

std::string OutputStore::save(const std::vector<uint8_t>& bytes, const std::string& ext) {
  const std::string tmp = write_temp_file(dir_, bytes);
  const std::string stem = output_stem(std::time(nullptr));
  for (int n = 1; n < 100000; ++n) {
    const std::string name = stem + (n == 1 ? "" : "_" + std::to_string(n)) + "." + ext;
    if (::link(tmp.c_str(), (dir_ + "/" + name).c_str()) == 0) {
      ::unlink(tmp.c_str());
      return name;
    }
    if (errno != EEXIST) {
      const int err = errno;
      ::unlink(tmp.c_str());
      fail("cannot save '", name, "' in '", dir_, "': ", std::strerror(err));
    }
  }
  ::unlink(tmp.c_str());
  fail("no free output name for ", stem, " in '", dir_, "'");
}

}  // namespace gpen::server
