// One file from a URL into place, safely: libcurl (HTTP/HTTPS, redirects) into `DEST.part`,
// resumed with a Range request when a previous attempt left a partial file, size and SHA-256
// checked, then renamed over DEST (atomic on POSIX). A file that fails its checksum is removed,
// never left where it could be used.
//
// Errors are gpen::Error with one line naming the URL and the cause: DNS, connection, HTTP
// status, TLS, timeout (too slow for too long), cut connection (the partial file is kept, so the
// next attempt resumes), checksum or size mismatch.
//
// Builds without libcurl (the fully static binary, GPEN_STATIC) keep everything else;
// download_file() then fails with a message saying how to fetch the file by hand
// (`gpen models import`).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace gpen {

struct DownloadOptions {
  std::string expected_sha256;  // lower-case hex; empty: not checked (the hash is still returned)
  int64_t expected_size = 0;    // bytes; 0: not checked
  long connect_timeout_s = 30;
  // Abort when fewer than low_speed_bytes per second arrive for low_speed_time_s seconds: a stalled
  // server fails instead of hanging forever. (Tests use 1 s.)
  long low_speed_bytes = 1024;
  long low_speed_time_s = 60;
  // Attempts per URL; after a cut connection the next attempt resumes where it stopped.
  int attempts = 3;
  bool progress = false;        // a progress bar on stderr
  std::string label;            // name shown in the progress bar (default: the file name)
};

struct DownloadResult {
  std::string sha256;        // of the complete file
  int64_t size = 0;
  int64_t resumed_from = 0;  // bytes already on disk when the last attempt started (0: from scratch)
};

// Downloads `url` to `dest` as described above. Throws gpen::Error.
DownloadResult download_file(const std::string& url, const std::string& dest, const DownloadOptions& opt);

// Whether this build has a download backend (libcurl).
bool download_supported();

// SHA-256 of a file, lower-case hex (OpenSSL). Throws gpen::Error when unreadable.
std::string sha256_file(const std::string& path);

// The partial-download path used for `dest`.
std::string partial_path(const std::string& dest);

}  // namespace gpen
