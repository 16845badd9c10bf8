#include "tools/server/zip_archive.h"

#include <zip.h>

#include <memory>

#include "core/error.h"

namespace gpen::server {
namespace {

struct SourceFree {
  void operator()(zip_source_t* s) const { zip_source_free(s); }
};
using SourcePtr = std::unique_ptr<zip_source_t, SourceFree>;

std::vector<uint8_t> read_all(zip_source_t* src) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_source_stat(src, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) fail("zip: cannot size the archive");
  std::vector<uint8_t> out(size_t(st.size));
  if (zip_source_open(src) != 0) fail("zip: cannot read the archive back");
  const zip_int64_t n = zip_source_read(src, out.data(), out.size());
  zip_source_close(src);
  if (n != zip_int64_t(out.size())) fail("zip: short read of the archive");
  return out;
}

}  // namespace

std::vector<uint8_t> make_zip(const std::vector<NamedBytes>& files) {
  zip_error_t error;
  zip_error_init(&error);
  SourcePtr buffer(zip_source_buffer_create(nullptr, 0, 0, &error));
  if (!buffer) fail("zip: ", zip_error_strerror(&error));
  zip_t* archive = zip_open_from_source(buffer.get(), ZIP_TRUNCATE, &error);
  if (!archive) fail("zip: ", zip_error_strerror(&error));
  zip_source_keep(buffer.get());  // the archive's close must leave the buffer to us
  for (const NamedBytes& f : files) {
    zip_source_t* data = zip_source_buffer(archive, f.bytes.data(), f.bytes.size(), 0);
    const zip_int64_t index = data ? zip_file_add(archive, f.name.c_str(), data, ZIP_FL_ENC_UTF_8) : -1;
    if (index < 0) {
      if (data) zip_source_free(data);
      std::string msg = zip_strerror(archive);
      zip_discard(archive);
      fail("zip: cannot add '", f.name, "': ", msg);
    }
    zip_set_file_compression(archive, zip_uint64_t(index), ZIP_CM_STORE, 0);
  }
  if (zip_close(archive) != 0) {
    std::string msg = zip_strerror(archive);
    zip_discard(archive);
    fail("zip: ", msg);
  }
  return read_all(buffer.get());
}

}  // namespace gpen::server
