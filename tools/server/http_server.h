// `gpen serve`'s HTTP layer (cpp-httplib): the JSON API of docs/API.md and the embedded web page.
// Requests are checked here (token, content type, upload size, magic bytes, image dimensions)
// before anything reaches the job queue; the work itself runs on the queue's workers.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "tools/server/engine.h"
#include "tools/server/job_queue.h"

namespace httplib {
class Server;
}

namespace gpen::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 7860;                          // 0: any free port (see bind())
  std::string token;                        // required by /api/* when not empty
  size_t max_upload_bytes = 64u << 20;      // whole request body; larger: 413
  size_t max_images_per_job = 64;
  int64_t sync_max_pixels = 16'000'000;     // /api/enhance answers larger images with a job id
  std::chrono::seconds sync_timeout{120};   // ... and any image not done by then
  int http_threads = 8;                     // at least the queue's capacity + 4
  int io_timeout_s = 30;                    // read / write timeout per connection
  bool log_requests = false;                // one stderr line per request
};

// True for 127.0.0.0/8, ::1 and "localhost": the only hosts allowed without a token.
bool is_loopback_host(const std::string& host);

class HttpServer {
 public:
  // Throws gpen::Error for a configuration that is unsafe (non-loopback host without a token).
  HttpServer(ServerConfig cfg, JobQueue& queue, const Engine& engine);
  ~HttpServer();

  int bind();   // binds host:port; returns the port (the chosen one when port is 0). Throws.
  void serve(); // accepts connections until stop()
  void stop();

 private:
  void add_routes();
  ServerConfig cfg_;
  JobQueue& queue_;
  const Engine& engine_;
  std::unique_ptr<httplib::Server> http_;
};

}  // namespace gpen::server
