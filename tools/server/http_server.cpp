#include "tools/server/http_server.h"

#include <httplib.h>

#include <arpa/inet.h>

#include <cstdio>
#include <map>

#include "core/device.h"
#include "core/image_ops.h"
#include "core/json_text.h"
#include "tools/server/web_assets.h"

namespace gpen::server {
namespace {

using Json = nlohmann::json;

// A request the client got wrong: status + message, answered as {"error": message}.
struct HttpError {
  int status;
  std::string message;
};

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(json_text(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

// Constant-time comparison (for equal lengths), so the token cannot be guessed byte by byte from
// response times.
bool same_secret(const std::string& given, const std::string& secret) {
  if (given.size() != secret.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < secret.size(); ++i) diff |= uint8_t(given[i]) ^ uint8_t(secret[i]);
  return diff == 0;
}

std::string request_token(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
  return req.get_header_value("X-Gpen-Token");
}

// The client's file name is for display only (job status, zip entries): its last path component,
// restricted to a safe alphabet. It never reaches the filesystem.
std::string display_name(const std::string& filename) {
  const size_t slash = filename.find_last_of("/\\");
  std::string base = slash == std::string::npos ? filename : filename.substr(slash + 1);
  std::string out;
  for (char c : base) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
    out += safe ? c : '_';
    if (out.size() >= 80) break;
  }
  while (!out.empty() && out[0] == '.') out.erase(0, 1);
  return out.empty() ? "image" : out;
}

bool accepted_part_type(const std::string& content_type) {
  static const char* allowed[] = {"",           "application/octet-stream", "image/png",  "image/jpeg",
                                  "image/jpg",  "image/webp",               "image/tiff", "image/bmp",
                                  "image/x-ms-bmp", "image/heic",           "image/heif", "image/avif"};
  for (const char* a : allowed)
    if (content_type == a) return true;
  return false;
}

// Checks an uploaded file before it is queued: declared type, magic bytes, header dimensions.
Upload checked_upload(const httplib::MultipartFormData& part, const DecodeLimits& limits, int64_t* pixels) {
  const std::string name = display_name(part.filename);
  if (!accepted_part_type(part.content_type))
    throw HttpError{415, name + ": content type '" + part.content_type + "' is not an image type we read"};
  const auto* data = reinterpret_cast<const uint8_t*>(part.content.data());
  if (detect_image_format(data, part.content.size()) == ImageFormat::Unknown)
    throw HttpError{415, name + ": not a PNG, JPEG, WebP, TIFF, BMP or HEIF/AVIF image"};
  ImageInfo info;
  try {
    info = probe_image(data, part.content.size());
  } catch (const Error& e) {
    throw HttpError{400, name + ": " + e.what()};
  }
  if (int64_t(info.width) * info.height > limits.max_pixels || std::max(info.width, info.height) > limits.max_side)
    throw HttpError{413, name + ": " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                             " exceeds the limit (" + std::to_string(limits.max_pixels) + " pixels, " +
                             std::to_string(limits.max_side) + " px per side)"};
  *pixels = int64_t(info.width) * info.height;
  return Upload{name, std::vector<uint8_t>(part.content.begin(), part.content.end())};
}

constexpr int kPreviewSide = 2048;

void send_preview(httplib::Response& res, const Upload& upload, const DecodeLimits& limits) {
  Image img;
  try {
    img = decode_image(upload.bytes, limits);
  } catch (const Error& e) {
    throw HttpError{400, upload.name + ": " + e.what()};
  }
  const int long_side = std::max(img.width, img.height);
  if (long_side > kPreviewSide) {
    ImageMetadata meta = std::move(img.meta);
    const double s = double(kPreviewSide) / long_side;
    img = downscale_area(img, std::max(1, int(img.width * s + 0.5)), std::max(1, int(img.height * s + 0.5)));
    img.meta = std::move(meta);
  }
  img.meta.exif.clear();  // a preview: the colour profile matters, the camera data does not
  img.meta.xmp.clear();
  EncodeOptions enc;
  enc.format = ImageFormat::Jpeg;
  enc.quality = 85;
  const std::vector<uint8_t> bytes = encode_image(img, enc);
  res.set_content(reinterpret_cast<const char*>(bytes.data()), bytes.size(), "image/jpeg");
}

struct ParsedForm {
  std::vector<Upload> uploads;
  EnhanceParams params;
  int64_t max_pixels = 0;  // of the largest upload
};

// Splits a multipart form into image uploads (parts named `file_field`) and parameter fields.
ParsedForm parse_form(const httplib::Request& req, const std::string& file_field, const DecodeLimits& limits,
                      size_t max_files) {
  if (!req.is_multipart_form_data()) throw HttpError{415, "expected multipart/form-data"};
  ParsedForm form;
  std::map<std::string, std::string> fields;
  for (const auto& [name, part] : req.files) {
    if (name != file_field) {
      if (!fields.emplace(name, part.content).second) throw HttpError{400, "parameter '" + name + "' given twice"};
      continue;
    }
    if (form.uploads.size() == max_files)
      throw HttpError{413, "more than " + std::to_string(max_files) + " images in one request"};
    int64_t pixels = 0;
    form.uploads.push_back(checked_upload(part, limits, &pixels));
    form.max_pixels = std::max(form.max_pixels, pixels);
  }
  if (form.uploads.empty()) throw HttpError{400, "no '" + file_field + "' file in the form"};
  try {
    form.params = parse_enhance_params(fields);
  } catch (const ParamError& e) {
    throw HttpError{400, e.what()};
  }
  return form;
}

// The queue is full: 503, with the time after which a retry is likely to be admitted.
[[noreturn]] void refuse_queue_full(const JobQueue& queue, httplib::Response& res) {
  res.set_header("Retry-After", std::to_string(queue.retry_after_seconds()));
  throw HttpError{503, "the job queue is full; retry later"};
}

std::string asset_mime(const std::string& name) {
  auto ends = [&](const char* ext) {
    const std::string e(ext);
    return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

// Runs a handler body, turning HttpError into its JSON answer.
template <class F>
void guarded(httplib::Response& res, F&& body) {
  try {
    body();
  } catch (const HttpError& e) {
    send_error(res, e.status, e.message);
  }
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

HttpServer::HttpServer(ServerConfig cfg, JobQueue& queue, const Engine& engine)
    : cfg_(std::move(cfg)), queue_(queue), engine_(engine), http_(std::make_unique<httplib::Server>()) {
  if (!is_loopback_host(cfg_.host) && cfg_.token.empty())
    fail("--host ", cfg_.host, " is reachable from other machines: give --token (or GPEN_TOKEN)");
  // Synchronous /api/enhance requests hold a connection thread while they wait, at most one per
  // job the queue admits: keep a few more threads so status polls and the page never starve.
  const int threads = std::max(cfg_.http_threads, queue_.capacity() + 4);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(cfg_.max_upload_bytes);
  http_->set_read_timeout(cfg_.io_timeout_s, 0);
  http_->set_write_timeout(cfg_.io_timeout_s, 0);
  http_->set_keep_alive_timeout(5);
  http_->set_default_headers({{"X-Content-Type-Options", "nosniff"},
                              {"Content-Security-Policy",
                               "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'"},
                              {"Cache-Control", "no-store"}});
  add_routes();
}

HttpServer::~HttpServer() { stop(); }

// A host name must resolve (/etc/hosts, DNS), and a bare container may not even have "localhost".
constexpr const char* kHostHint = "is the host an address of this machine? 127.0.0.1 and ::1 need no name lookup";

int HttpServer::bind() {
  if (cfg_.port == 0) {
    const int port = http_->bind_to_any_port(cfg_.host);
    if (port <= 0) fail("cannot listen on ", cfg_.host, " (", kHostHint, ")");
    return port;
  }
  if (!http_->bind_to_port(cfg_.host, cfg_.port)) fail("cannot listen on ", cfg_.host, ":", cfg_.port, " (port in use? ", kHostHint, ")");
  return cfg_.port;
}

void HttpServer::serve() { http_->listen_after_bind(); }

void HttpServer::stop() {
  if (http_) http_->stop();
}

void HttpServer::add_routes() {
  auto& s = *http_;
  const DecodeLimits limits = queue_.limits();

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (cfg_.token.empty() || req.path.rfind("/api/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (same_secret(request_token(req), cfg_.token)) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "missing or wrong token (Authorization: Bearer <token>)");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, 413, "request larger than " + std::to_string(cfg_.max_upload_bytes) + " bytes");
    else if (res.status == 404)
      send_error(res, 404, "not found");
    else
      send_error(res, res.status, "request failed (HTTP " + std::to_string(res.status) + ")");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, what);
  });
  if (cfg_.log_requests)
    s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "%s %s -> %d (%zu bytes)\n", req.method.c_str(), req.path.c_str(), res.status,
                   res.body.size());
    });

  // --- the web page ---
  for (const WebAsset& a : web_assets()) {
    const std::string name = a.name;
    const std::string path = name == "index.html" ? "/" : "/" + name;
    s.Get(path, [a, name](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, asset_mime(name).c_str());
    });
  }

  // --- the JSON API ---
  // Where the next image runs (the device setting resolved); never throws, for /api/health.
  auto device_in_use = [this] {
    const Device d = queue_.settings().device;
    return d != Device::Cpu && engine_.gpu_usable() ? "cuda" : "cpu";
  };
  s.Get("/api/health", [this, device_in_use](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200,
              {{"status", "ok"},
               {"version", "0.1.0"},
               {"devices", engine_.devices_json()},
               {"device_in_use", device_in_use()},
               {"model", engine_.models_json()["gpen"]},
               {"settings", to_json(queue_.settings())},
               {"queue", queue_.stats_json()},
               {"limits",
                {{"max_upload_bytes", cfg_.max_upload_bytes},
                 {"max_images_per_job", cfg_.max_images_per_job},
                 {"max_pixels", queue_.limits().max_pixels},
                 {"max_side", queue_.limits().max_side},
                 {"sync_max_pixels", cfg_.sync_max_pixels}}}});
  });
  s.Get("/api/models", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, engine_.models_json());
  });
  s.Get("/api/settings", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, to_json(queue_.settings()));
  });
  s.Post("/api/settings", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
        throw HttpError{415, "expected application/json"};
      const Json patch = Json::parse(req.body, nullptr, false);
      if (patch.is_discarded()) throw HttpError{400, "the body is not valid JSON"};
      Settings next;
      try {
        next = apply_settings_patch(queue_.settings(), patch);
      } catch (const ParamError& e) {
        throw HttpError{400, e.what()};
      }
      std::string why;
      if (next.device == Device::Cuda && !engine_.gpu_usable(&why))
        throw HttpError{400, "CUDA is not available: " + why};
      queue_.set_settings(next);
      send_json(res, 200, to_json(next));
    });
  });

  s.Post("/api/enhance", [this, limits](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      ParsedForm form = parse_form(req, "image", limits, 1);
      const bool large = form.max_pixels > cfg_.sync_max_pixels;
      const std::optional<std::string> id = queue_.submit(std::move(form.uploads), form.params);
      if (!id) refuse_queue_full(queue_, res);
      const Json accepted = {{"id", *id}, {"status_url", "/api/jobs/" + *id}};
      if (form.params.async || large || queue_.wait(*id, cfg_.sync_timeout) != WaitOutcome::Finished) {
        send_json(res, 202, accepted);
        return;
      }
      const std::optional<ItemResult> r = queue_.result(*id, 0);
      const auto err = r ? std::nullopt : queue_.first_error(*id);
      queue_.forget(*id);  // answered in full here: the job need not be kept for later downloads
      if (r) {
        res.set_header("X-Gpen-Job", *id);
        res.set_header("X-Gpen-Faces", std::to_string(r->faces));
        res.set_header("X-Gpen-Saved-As", r->saved_as);
        if (!r->colour_profile.empty()) res.set_header("X-Gpen-Colour-Profile", r->colour_profile);
        res.set_header("Content-Disposition", "inline; filename=\"" + r->name + "\"");
        res.set_content(reinterpret_cast<const char*>(r->bytes.data()), r->bytes.size(), format_mime(r->format));
        return;
      }
      if (err && err->second) throw HttpError{400, "bad image: " + err->first};
      throw HttpError{500, err ? err->first : "the result is no longer kept"};
    });
  });

  // The upload as a JPEG a browser shows (TIFF and HEIC are not shown by most), upright, the long
  // side at most kPreviewSide, with its colour profile: the Web UI's "before" picture.
  s.Post("/api/preview", [limits](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      ParsedForm form = parse_form(req, "image", limits, 1);
      send_preview(res, form.uploads[0], limits);
    });
  });

  s.Post("/api/jobs", [this, limits](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      ParsedForm form = parse_form(req, "images", limits, cfg_.max_images_per_job);
      const size_t count = form.uploads.size();
      const std::optional<std::string> id = queue_.submit(std::move(form.uploads), form.params);
      if (!id) refuse_queue_full(queue_, res);
      send_json(res, 202, {{"id", *id}, {"images", count}, {"status_url", "/api/jobs/" + *id}});
    });
  });

  const std::string job = "/api/jobs/([0-9a-f]{32})";
  s.Get(job, [this](const httplib::Request& req, httplib::Response& res) {
    if (auto st = queue_.status(req.matches[1])) return send_json(res, 200, *st);
    send_error(res, 404, "unknown job (finished jobs are kept for a limited time)");
  });
  s.Get(job + "/images/([0-9]{1,6})", [this](const httplib::Request& req, httplib::Response& res) {
    const std::optional<ItemResult> r = queue_.result(req.matches[1], std::stoul(req.matches[2]));
    if (!r) return send_error(res, 404, "no such finished image");
    res.set_header("Content-Disposition", "inline; filename=\"" + r->name + "\"");
    res.set_content(reinterpret_cast<const char*>(r->bytes.data()), r->bytes.size(), format_mime(r->format));
  });
  s.Get(job + "/result.zip", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const std::optional<std::vector<NamedBytes>> files = queue_.finished_outputs(id);
    if (!files) {
      if (queue_.status(id)) return send_error(res, 409, "the job has not finished yet");
      return send_error(res, 404, "unknown job (finished jobs are kept for a limited time)");
    }
    if (files->empty()) return send_error(res, 409, "no image of this job was restored");
    const std::vector<uint8_t> zip = make_zip(*files);
    res.set_header("Content-Disposition", "attachment; filename=\"gpen_" + id.substr(0, 8) + ".zip\"");
    res.set_content(reinterpret_cast<const char*>(zip.data()), zip.size(), "application/zip");
  });
}

}  // namespace gpen::server
