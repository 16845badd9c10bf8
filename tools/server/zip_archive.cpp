#include "tools/server/zip_archive.h"

#include <minizip/zip.h>

#include <algorithm>
#include <ctime>

#include "core/error.h"
#include "weights/minizip_io.h"

namespace gpen::server {
namespace {

constexpr int kStored = 0;                         // zip compression method 0
constexpr uLong kUtf8Names = 1u << 11;             // general purpose flag bit 11: names are UTF-8
constexpr uLong kMadeByMinizipDefault = 0;         // "version made by", as zipOpenNewFileInZip64
constexpr uint64_t kMaxWriteChunk = uint64_t(1) << 30;  // zipWriteInFileInZip takes an unsigned

// Entries carry the time they were zipped, in local time as zip's DOS dates expect.
zip_fileinfo entry_info_now() {
  zip_fileinfo info{};
  const std::time_t now = std::time(nullptr);
  std::tm t{};
  localtime_r(&now, &t);
  info.tmz_date.tm_sec = uInt(t.tm_sec);
  info.tmz_date.tm_min = uInt(t.tm_min);
  info.tmz_date.tm_hour = uInt(t.tm_hour);
  info.tmz_date.tm_mday = uInt(t.tm_mday);
  info.tmz_date.tm_mon = uInt(t.tm_mon);
  info.tmz_date.tm_year = uInt(t.tm_year + 1900);
  return info;
}

// zipClose on every path: it also frees the handle. On success it writes the central directory.
class ZipWriter {
 public:
  ZipWriter() {
    zlib_filefunc64_def io = out_.functions();
    zf_ = zipOpen2_64("result.zip", APPEND_STATUS_CREATE, nullptr, &io);
    if (!zf_) fail("zip: cannot start the archive");
  }
  ~ZipWriter() {
    if (zf_) zipClose(zf_, nullptr);
  }
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  void add_stored(const NamedBytes& f) {
    const zip_fileinfo info = entry_info_now();
    const int zip64 = f.bytes.size() >= 0xffffffffu;  // only entries that need it get zip64 fields
    if (zipOpenNewFileInZip4_64(zf_, f.name.c_str(), &info, nullptr, 0, nullptr, 0, nullptr, kStored, 0, /*raw=*/0,
                                -MAX_WBITS, /*memLevel=*/8, Z_DEFAULT_STRATEGY, /*password=*/nullptr, 0,
                                kMadeByMinizipDefault, kUtf8Names, zip64) != ZIP_OK) {
      fail("zip: cannot add '", f.name, "'");
    }
    for (size_t done = 0; done < f.bytes.size();) {
      const unsigned chunk = unsigned(std::min<uint64_t>(f.bytes.size() - done, kMaxWriteChunk));
      if (zipWriteInFileInZip(zf_, f.bytes.data() + done, chunk) != ZIP_OK) fail("zip: cannot write '", f.name, "'");
      done += chunk;
    }
    if (zipCloseFileInZip(zf_) != ZIP_OK) fail("zip: cannot finish '", f.name, "'");
  }

  std::vector<uint8_t> finish() {
    const int closed = zipClose(zf_, nullptr);
    zf_ = nullptr;
    if (closed != ZIP_OK) fail("zip: cannot write the central directory");
    return std::move(out_.written());
  }

 private:
  MinizipMemoryFile out_;
  zipFile zf_ = nullptr;
};

}  // namespace

std::vector<uint8_t> make_zip(const std::vector<NamedBytes>& files) {
  ZipWriter zip;
  for (const NamedBytes& f : files) zip.add_stored(f);
  return zip.finish();
}

}  // namespace gpen::server
