#include "tests/local_http_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace gpen::test {

namespace {

struct Route {
  std::string body;
  RouteBehaviour behaviour;
  std::vector<std::string> ranges;  // one per request
};

}  // namespace

struct LocalHttpServer::Impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<bool> stopping{false};
  mutable std::mutex mu;
  std::map<std::string, Route> routes;

  // Sends body[offset, offset + length) in chunks, misbehaving as the route asks.
  bool send(const std::string& body, const RouteBehaviour& b, bool cut, size_t offset, size_t length,
            httplib::DataSink& sink) {
    const size_t chunk = 16 * 1024;
    const size_t end = offset + length;
    for (size_t at = offset; at < end;) {
      if (b.stall_after >= 0 && at >= size_t(b.stall_after)) return stall(sink);
      size_t n = std::min(chunk, end - at);
      if (b.stall_after >= 0 && at < size_t(b.stall_after)) n = std::min(n, size_t(b.stall_after) - at);
      if (cut && b.cut_after > 0) {
        if (at >= b.cut_after) return false;  // httplib closes the connection mid-body
        n = std::min(n, b.cut_after - at);
      }
      if (!sink.write(body.data() + at, n)) return false;
      at += n;
      if (b.chunk_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(b.chunk_delay_ms));
    }
    return true;
  }

  // Holds the connection open, sending nothing, until the client leaves or the server stops
  // (10 s at most, so a client without a timeout cannot hang the test run).
  bool stall(httplib::DataSink& sink) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!stopping && sink.is_writable() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return false;
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    std::string body;
    RouteBehaviour b;
    bool cut = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = routes.find(req.path);
      if (it == routes.end()) {
        res.status = 404;
        res.set_content("not found", "text/plain");
        return;
      }
      Route& r = it->second;
      r.ranges.push_back(req.has_header("Range") ? req.get_header_value("Range") : "");
      cut = int(r.ranges.size()) <= r.behaviour.cut_requests;
      body = r.body;
      b = r.behaviour;
    }
    auto shared = std::make_shared<std::string>(std::move(body));
    res.set_content_provider(shared->size(), "application/octet-stream",
                             [this, shared, b, cut](size_t offset, size_t length, httplib::DataSink& sink) {
                               return send(*shared, b, cut, offset, length, sink);
                             });
  }
};

LocalHttpServer::LocalHttpServer() : impl_(std::make_unique<Impl>()) {
  impl_->server.Get(".*", [this](const httplib::Request& req, httplib::Response& res) { impl_->handle(req, res); });
  impl_->port = impl_->server.bind_to_any_port("127.0.0.1");
  if (impl_->port <= 0) throw std::runtime_error("test HTTP server: cannot bind 127.0.0.1");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  while (!impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

LocalHttpServer::~LocalHttpServer() {
  impl_->stopping = true;
  impl_->server.stop();
  impl_->thread.join();
}

void LocalHttpServer::serve(const std::string& path, std::string body, RouteBehaviour behaviour) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->routes[path] = Route{std::move(body), behaviour, {}};
}

std::string LocalHttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(impl_->port) + path;
}

int LocalHttpServer::port() const { return impl_->port; }

int LocalHttpServer::requests(const std::string& path) const { return int(range_headers(path).size()); }

std::vector<std::string> LocalHttpServer::range_headers(const std::string& path) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->routes.find(path);
  return it == impl_->routes.end() ? std::vector<std::string>{} : it->second.ranges;
}

}  // namespace gpen::test
