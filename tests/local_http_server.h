// A small HTTP server on 127.0.0.1 (random port) for the download tests, in the test's own
// process: files served with Range support, and routes that misbehave on purpose (cut the
// connection part-way, stall, serve slowly). Built on cpp-httplib.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace gpen::test {

struct RouteBehaviour {
  size_t cut_after = 0;     // close the connection once this byte offset is reached (0: never)...
  int cut_requests = 0;     // ...on this many requests, the first ones
  long stall_after = -1;    // stop sending at this offset until the client gives up (-1: never)
  int chunk_delay_ms = 0;   // pause between 16 KiB chunks (a slow but steady server)
};

class LocalHttpServer {
 public:
  LocalHttpServer();  // listening when the constructor returns
  ~LocalHttpServer();
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  // Serves `body` at `path` (e.g. "/models/a.bin"); Range requests get 206 and the range.
  void serve(const std::string& path, std::string body, RouteBehaviour behaviour = {});
  std::string url(const std::string& path) const;
  int port() const;
  // Requests seen for `path`, and the Range header of each ("" when none).
  int requests(const std::string& path) const;
  std::vector<std::string> range_headers(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpen::test
