#include "weights/download.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"

#ifdef GPEN_HAVE_CURL
#include <curl/curl.h>
#endif

namespace fs = std::filesystem;

namespace gpen {

std::string partial_path(const std::string& dest) { return dest + ".part"; }

std::string sha256_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fail("cannot read ", path, ": ", std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) fail("SHA-256: OpenSSL initialisation failed");
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
  if (std::ferror(f.get())) fail("error reading ", path, ": ", std::strerror(errno));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

namespace {

int64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? 0 : int64_t(n);
}

// Checks the finished partial file against the expectations and moves it into place. A file that
// fails is removed: a wrong file must never be resumed or used. (Unused in the static build,
// which has no libcurl.)
[[maybe_unused]] DownloadResult finish_download(const std::string& url, const std::string& part,
                                                const std::string& dest, const DownloadOptions& opt,
                                                int64_t resumed_from) {
  DownloadResult r;
  r.size = file_size_or_zero(part);
  r.resumed_from = resumed_from;
  if (opt.expected_size > 0 && r.size != opt.expected_size) {
    fs::remove(part);
    fail("size mismatch for ", url, ": expected ", opt.expected_size, " bytes, got ", r.size, "; the file was removed");
  }
  r.sha256 = sha256_file(part);
  if (!opt.expected_sha256.empty() && r.sha256 != opt.expected_sha256) {
    fs::remove(part);
    fail("checksum mismatch for ", url, ": expected SHA-256 ", opt.expected_sha256, ", got ", r.sha256,
         "; the file was removed");
  }
  std::error_code ec;
  fs::rename(part, dest, ec);
  if (ec) fail("cannot move ", part, " to ", dest, ": ", ec.message());
  return r;
}

}  // namespace

#ifdef GPEN_HAVE_CURL

bool download_supported() { return true; }

namespace {

using Clock = std::chrono::steady_clock;

void init_curl_once() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once.
  static const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!ok) fail("libcurl initialisation failed");
}

// "GPEN-BFR-512.pth  [=========>          ]  47%  128.3/271.0 MB  11.2 MB/s", redrawn in place.
class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}
  ~ProgressBar() {
    if (drawn_) std::fputc('\n', stderr);
  }
  void update(int64_t done, int64_t total, int64_t session_bytes) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(200) && done != total) return;
    last_ = now;
    drawn_ = true;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? session_bytes / secs / 1e6 : 0;
    if (total <= 0) {
      std::fprintf(stderr, "\r%s  %.1f MB  %.1f MB/s   ", label_.c_str(), done / 1e6, rate);
    } else {
      const int width = 24, filled = int(width * double(done) / double(total));
      std::string bar(size_t(width), ' ');
      for (int i = 0; i < filled && i < width; ++i) bar[size_t(i)] = '=';
      if (filled < width) bar[size_t(filled)] = '>';
      std::fprintf(stderr, "\r%s  [%s] %3d%%  %.1f/%.1f MB  %.1f MB/s   ", label_.c_str(), bar.c_str(),
                   int(100.0 * double(done) / double(total)), done / 1e6, total / 1e6, rate);
    }
    std::fflush(stderr);
  }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now(), last_;
};

// State shared with libcurl's callbacks during one attempt.
struct Transfer {
  CURL* curl = nullptr;
  FILE* out = nullptr;
  int64_t offset = 0;     // bytes of the partial file kept (the Range start)
  bool checked_status = false;
  int write_errno = 0;
  ProgressBar* bar = nullptr;
};

// A server that ignores our Range header answers 200 with the whole file: start over.
bool restart_if_range_ignored(Transfer& t) {
  long status = 0;
  curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
  if (t.offset > 0 && status == 200) {
    if (std::fflush(t.out) != 0 || ftruncate(fileno(t.out), 0) != 0 || std::fseek(t.out, 0, SEEK_SET) != 0) return false;
    t.offset = 0;
  }
  return true;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  if (!t.checked_status) {
    t.checked_status = true;
    if (!restart_if_range_ignored(t)) {
      t.write_errno = errno;
      return 0;
    }
  }
  const size_t wrote = std::fwrite(data, size, n, t.out);
  if (wrote != n) t.write_errno = errno;
  return wrote * size;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  t.bar->update(t.offset + now, total > 0 ? t.offset + total : 0, now);
  return 0;
}

enum class Outcome { Done, Retry, Fatal };

struct AttemptError {
  Outcome outcome = Outcome::Done;
  std::string message;
};

std::string host_of(const std::string& url) {
  const size_t start = url.find("://");
  const size_t from = start == std::string::npos ? 0 : start + 3;
  return url.substr(from, url.find_first_of("/:?", from) - from);
}

// One line saying what went wrong, and whether another attempt can help.
AttemptError classify(CURLcode code, long status, const Transfer& t, const DownloadOptions& opt,
                      const std::string& url, const std::string& part, const char* detail) {
  const std::string why = std::string(curl_easy_strerror(code)) + (detail[0] ? std::string(": ") + detail : "");
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return {Outcome::Fatal, "cannot resolve host '" + host_of(url) + "' (DNS): no network, or set GPEN_MIRROR"};
    case CURLE_COULDNT_CONNECT:
      return {Outcome::Retry, "cannot connect to " + host_of(url) + ": " + why};
    case CURLE_HTTP_RETURNED_ERROR:
      return {status >= 500 || status == 429 ? Outcome::Retry : Outcome::Fatal,
              "HTTP " + std::to_string(status) + " from " + url};
    case CURLE_OPERATION_TIMEDOUT:
      return {Outcome::Retry, "timed out: less than " + std::to_string(opt.low_speed_bytes) + " bytes/s for " +
                                  std::to_string(opt.low_speed_time_s) + " s (or no connection in " +
                                  std::to_string(opt.connect_timeout_s) + " s) from " + url};
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
      return {Outcome::Retry, "connection to " + host_of(url) + " cut after " +
                                  std::to_string(file_size_or_zero(part)) + " bytes (" + why +
                                  "); the partial file is kept and the next attempt resumes"};
    case CURLE_WRITE_ERROR:
      return {Outcome::Fatal, "cannot write " + part + ": " + std::strerror(t.write_errno ? t.write_errno : EIO)};
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_INITFAILED:
      return {Outcome::Fatal, "TLS error with " + host_of(url) + ": " + why +
                                  " (are CA certificates installed? Debian: ca-certificates)"};
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return {Outcome::Fatal, "bad URL '" + url + "': " + why};
    default:
      return {Outcome::Retry, "download of " + url + " failed: " + why};
  }
}

void configure(CURL* curl, const std::string& url, const DownloadOptions& opt, Transfer& t, char* errbuf) {
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);  // 4xx/5xx: an error, not a body to save
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);     // no SIGALRM: safe in threads
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "gpen/0.1.0 (libcurl)");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, opt.connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, opt.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, opt.low_speed_time_s);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  // Set by hand rather than with CURLOPT_RESUME_FROM, which refuses servers that ignore ranges;
  // those answer 200 and restart_if_range_ignored() starts the file over.
  if (t.offset > 0) curl_easy_setopt(curl, CURLOPT_RANGE, (std::to_string(t.offset) + "-").c_str());
}

// One request: appends to the partial file from where it ends.
AttemptError attempt(const std::string& url, const std::string& part, const DownloadOptions& opt, ProgressBar& bar,
                     int64_t* resumed_from) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) fail("libcurl: cannot create a transfer");
  std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(part.c_str(), "ab"), &std::fclose);
  if (!out) fail("cannot write ", part, ": ", std::strerror(errno));
  Transfer t;
  t.curl = curl.get();
  t.out = out.get();
  t.offset = file_size_or_zero(part);
  t.bar = &bar;
  *resumed_from = t.offset;
  char errbuf[CURL_ERROR_SIZE] = {0};
  configure(curl.get(), url, opt, t, errbuf);
  const CURLcode code = curl_easy_perform(curl.get());
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  const bool flushed = std::fflush(out.get()) == 0 && fsync(fileno(out.get())) == 0;
  if (code == CURLE_OK && !flushed) return {Outcome::Fatal, "cannot write " + part + ": " + std::strerror(errno)};
  if (code == CURLE_OK) return {};
  // 416: the partial file already holds everything the server has (or more): check it as is.
  if (code == CURLE_HTTP_RETURNED_ERROR && status == 416 && t.offset > 0) return {};
  return classify(code, status, t, opt, url, part, errbuf);
}

}  // namespace

DownloadResult download_file(const std::string& url, const std::string& dest, const DownloadOptions& opt) {
  init_curl_once();
  const std::string part = partial_path(dest);
  if (opt.expected_size > 0 && file_size_or_zero(part) > opt.expected_size) fs::remove(part);
  ProgressBar bar(opt.label.empty() ? fs::path(dest).filename().string() : opt.label, opt.progress);
  std::string last_error;
  for (int i = 0; i < std::max(1, opt.attempts); ++i) {
    int64_t resumed_from = 0;
    const AttemptError e = attempt(url, part, opt, bar, &resumed_from);
    if (e.outcome == Outcome::Done) return finish_download(url, part, dest, opt, resumed_from);
    last_error = e.message;
    if (e.outcome == Outcome::Fatal) break;
  }
  std::error_code ec;
  if (file_size_or_zero(part) == 0) fs::remove(part, ec);  // nothing worth resuming
  fail(last_error);
}

#else  // no libcurl: the static build

bool download_supported() { return false; }

DownloadResult download_file(const std::string& url, const std::string& dest, const DownloadOptions&) {
  fail("this gpen was built without a download backend (static build, no libcurl): fetch ", url,
       " with curl or a browser, then run `gpen models import NAME FILE` (checks it and puts it in the cache as ",
       fs::path(dest).filename().string(), ")");
}

#endif

}  // namespace gpen
