// `gpen serve` in-process over 127.0.0.1: the API's happy paths and its refusals (413, 415, 400,
// 404, 401, 503 + Retry-After beyond the queue bound), and that results land only in the outputs
// directory. Uses the committed tiny GPEN (size 32) and the shared mobilenet detector.
#include <catch2/catch.hpp>

#include <zip.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/image.h"
#include "core/image_ops.h"
#include "tests/test_util.h"
#include "tools/server/http_server.h"

namespace fs = std::filesystem;
using namespace gpen;
using namespace gpen::server;
using Json = nlohmann::json;

namespace {

const std::string kTiny = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth");
const std::string kDetector = test::shared_path("weights/retinaface_mobilenet0.25.pth");

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string png_of(int w, int h, uint8_t value) {
  Image img(w, h, 3);
  std::fill(img.pixels.begin(), img.pixels.end(), value);
  EncodeOptions o;
  o.format = ImageFormat::Png;
  auto bytes = encode_image(img, o);
  return std::string(bytes.begin(), bytes.end());
}

// A fresh scratch directory per server: the outputs dir lives inside it, so a test can check
// that nothing else appeared next to it.
std::string fresh_dir(const std::string& name) {
  static std::atomic<int> counter{0};
  return test::fresh_scratch("serve_test", std::to_string(counter++) + "_" + name);
}

EngineConfig engine_config(const std::string& detector, const std::string& root) {
  EngineConfig ec;
  ec.model = kTiny;
  ec.detector = detector;
  ec.models_dir = root + "/models";
  return ec;
}

// The CPU backend standing in for the GPU: the server's shared, coalescing GPU path, run here.
SelectedDevice stand_in_gpu() {
  SelectedDevice d;
  d.backend = make_cpu_backend();
  d.description = "stand-in GPU (the CPU backend)";
  return d;
}

struct TestServer {
  std::string root;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<OutputStore> outputs;
  std::unique_ptr<JobQueue> queue;
  std::unique_ptr<HttpServer> http;
  std::thread thread;
  int port = 0;

  explicit TestServer(ServerConfig http_cfg = {}, QueueConfig queue_cfg = {},
                      const std::function<void(EngineConfig&)>& tweak = {})
      : root(fresh_dir("srv")) {
    EngineConfig ec = engine_config(kDetector, root);
    if (tweak) tweak(ec);
    engine = std::make_unique<Engine>(ec);
    outputs = std::make_unique<OutputStore>(root + "/outputs");
    queue = std::make_unique<JobQueue>(*engine, *outputs, Settings{}, queue_cfg);
    http_cfg.port = 0;
    http = std::make_unique<HttpServer>(http_cfg, *queue, *engine);
    port = http->bind();
    thread = std::thread([this] { http->serve(); });
  }
  ~TestServer() {
    http->stop();
    thread.join();
    http.reset();
    queue.reset();
    fs::remove_all(root);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  std::vector<std::string> output_files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(root + "/outputs")) names.push_back(e.path().filename().string());
    return names;
  }
};

httplib::MultipartFormData file_part(const std::string& field, const std::string& bytes, const std::string& filename,
                                     const std::string& type = "image/png") {
  return {field, bytes, filename, type};
}
httplib::MultipartFormData text_part(const std::string& field, const std::string& value) {
  return {field, value, "", ""};
}

httplib::Result post_form(httplib::Client& cli, const std::string& path, const httplib::MultipartFormDataItems& items) {
  return cli.Post(path.c_str(), items);
}

Json json_of(const httplib::Result& r) { return Json::parse(r->body); }

// Polls a job until it has finished (or 60 s pass, which fails the test).
Json wait_finished(httplib::Client& cli, const std::string& id) {
  for (int i = 0; i < 600; ++i) {
    auto r = cli.Get("/api/jobs/" + id);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    Json st = json_of(r);
    if (st["status"] == "finished") return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("job " << id << " did not finish");
  return {};
}

std::vector<std::string> zip_entry_names(const std::string& bytes) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
  REQUIRE(src);
  zip_t* z = zip_open_from_source(src, ZIP_RDONLY, &err);
  REQUIRE(z);
  std::vector<std::string> names;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) names.push_back(zip_get_name(z, zip_uint64_t(i), 0));
  zip_close(z);
  return names;
}

}  // namespace

TEST_CASE("serve: enhance a photo, get the image back and find it in the outputs dir", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  const std::string photo = read_file(test::shared_path("images/group_solvay_1927.png"));
  auto r = post_form(cli, "/api/enhance", {file_part("image", photo, "group.png"), text_part("strength", "100")});
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "image/png");
  CHECK(std::stoi(r->get_header_value("X-Gpen-Faces")) > 0);
  const Image out = decode_image(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size());
  const Image in = decode_image(reinterpret_cast<const uint8_t*>(photo.data()), photo.size());
  CHECK(out.width == in.width);
  CHECK(out.height == in.height);
  CHECK(out.pixels != to_rgb(in).pixels);  // faces were restored
  CHECK(out.meta.icc == in.meta.icc);       // the photo's colour profile comes back with it
  CHECK(r->get_header_value("X-Gpen-Colour-Profile") == "Display");  // its faces went through GPEN in sRGB
  CHECK(!out.meta.exif.empty());
  auto stripped = post_form(cli, "/api/enhance", {file_part("image", photo, "group.png"), text_part("strength", "100"),
                                                  text_part("strip_metadata", "true")});
  REQUIRE(stripped);
  REQUIRE(stripped->status == 200);
  CHECK(decode_image(reinterpret_cast<const uint8_t*>(stripped->body.data()), stripped->body.size()).meta.empty());

  const std::string saved = r->get_header_value("X-Gpen-Saved-As");
  CHECK(std::regex_match(saved, std::regex(R"(outputs_\d{14}(_\d+)?\.png)")));
  CHECK(read_file(srv.root + "/outputs/" + saved) == r->body);
}

TEST_CASE("serve: a TIFF scan and a BMP are accepted under their own content types", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  const Image in = load_image(test::shared_path("images/lowq_face_512.png"));
  EncodeOptions o;
  for (auto [format, type] : {std::pair{ImageFormat::Tiff, "image/tiff"}, std::pair{ImageFormat::Bmp, "image/bmp"}}) {
    o.format = format;
    const std::vector<uint8_t> bytes = encode_image(in, o);
    auto r = post_form(cli, "/api/enhance", {file_part("image", std::string(bytes.begin(), bytes.end()), "scan", type),
                                             text_part("aligned", "true")});
    REQUIRE(r);
    INFO(r->body.substr(0, 200));
    REQUIRE(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "image/png");
  }
}

TEST_CASE("serve: /api/preview gives a browser a JPEG of a TIFF, capped at 2048 px, with its profile", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  Image scan(3000, 1000, 3);
  for (size_t i = 0; i < scan.pixels.size(); ++i) scan.pixels[i] = uint8_t(i * 7 % 251);
  scan.meta = load_image(test::shared_path("images/group_solvay_1927.png")).meta;
  EncodeOptions o;
  o.format = ImageFormat::Tiff;
  const std::vector<uint8_t> tif = encode_image(scan, o);
  auto r = post_form(cli, "/api/preview", {file_part("image", std::string(tif.begin(), tif.end()), "scan.tif", "image/tiff")});
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "image/jpeg");
  const Image jpg = decode_image(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size());
  CHECK((jpg.width == 2048 && jpg.height == 683));
  CHECK(jpg.meta.icc == scan.meta.icc);
  CHECK(jpg.meta.exif.empty());
  auto bad = post_form(cli, "/api/preview", {file_part("image", "not an image at all", "x.tif", "image/tiff")});
  REQUIRE(bad);
  CHECK(bad->status == 415);
}

TEST_CASE("serve: a 16-bit PNG upload comes back 16-bit, untouched samples exact", "[serve][16bit]") {
  TestServer srv;
  auto cli = srv.client();
  // The group photo as a 16-bit PNG (our encoder: each sample v * 257 + a sub-8-bit offset).
  Image photo = to_rgb(load_image(test::shared_path("images/group_solvay_1927.png")));
  auto samples = std::make_shared<Samples16>();
  samples->width = photo.width, samples->height = photo.height, samples->channels = 3;
  for (size_t i = 0; i < photo.pixels.size(); ++i)
    samples->data.push_back(uint16_t(std::clamp(photo.pixels[i] * 257 + int(i % 101) - 50, 0, 65535)));
  photo.samples16 = samples;
  const std::vector<uint8_t> png = encode_image(photo, EncodeOptions{ImageFormat::Png});
  auto r = post_form(cli, "/api/enhance", {file_part("image", std::string(png.begin(), png.end()), "scan.png"),
                                           text_part("strength", "100"), text_part("format", "png")});
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const Image out = decode_image(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size());
  REQUIRE(out.samples16);
  size_t untouched = 0, moved = 0;  // moved: untouched pixels whose 16-bit sample changed
  for (size_t i = 0; i < photo.pixels.size(); ++i)
    if (out.pixels[i] == photo.pixels[i]) {
      moved += out.samples16->data[i] != samples->data[i];
      ++untouched;
    }
  CHECK(moved == 0);
  CHECK(untouched > photo.pixels.size() / 2);
  CHECK(untouched < photo.pixels.size());  // faces were restored

  auto eight = post_form(cli, "/api/enhance", {file_part("image", std::string(png.begin(), png.end()), "scan.png"),
                                               text_part("strength", "100"), text_part("format", "png"),
                                               text_part("eight_bit", "true")});
  REQUIRE(eight);
  REQUIRE(eight->status == 200);
  const Image shallow = decode_image(reinterpret_cast<const uint8_t*>(eight->body.data()), eight->body.size());
  CHECK_FALSE(shallow.samples16);
  CHECK(shallow.pixels == out.pixels);
}

TEST_CASE("serve: an aligned crop in JPEG out; parameters reach the result", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  const std::string crop = read_file(test::shared_path("images/lowq_face_512.png"));
  auto full = post_form(cli, "/api/enhance", {file_part("image", crop, "face.png"), text_part("aligned", "true"),
                                        text_part("strength", "100"), text_part("format", "jpeg")});
  REQUIRE(full);
  REQUIRE(full->status == 200);
  CHECK(full->get_header_value("Content-Type") == "image/jpeg");
  auto none = post_form(cli, "/api/enhance", {file_part("image", crop, "face.png"), text_part("aligned", "true"),
                                        text_part("strength", "0"), text_part("format", "jpeg")});
  REQUIRE(none);
  REQUIRE(none->status == 200);
  CHECK(none->body != full->body);
}

TEST_CASE("serve: enhance with async=true answers with a job, whose image is fetched later", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  auto r = post_form(cli, "/api/enhance", {file_part("image", png_of(96, 64, 200), "flat.png"), text_part("async", "true")});
  REQUIRE(r);
  REQUIRE(r->status == 202);
  const std::string id = json_of(r)["id"];
  CHECK(json_of(r)["status_url"] == "/api/jobs/" + id);
  const Json st = wait_finished(cli, id);
  CHECK(st["images"][0]["faces"] == 0);  // a flat grey picture has no face: returned as it was
  auto img = cli.Get(st["images"][0]["url"].get<std::string>().c_str());
  REQUIRE(img);
  REQUIRE(img->status == 200);
  const Image out = decode_image(reinterpret_cast<const uint8_t*>(img->body.data()), img->body.size());
  CHECK(out.width == 96);
  CHECK(out.height == 64);
}

TEST_CASE("serve: oversized requests and images get 413", "[serve]") {
  ServerConfig http;
  http.max_upload_bytes = 200 * 1024;
  QueueConfig q;
  q.limits.max_pixels = 1'000'000;
  TestServer srv(http, q);
  auto cli = srv.client();

  std::string big(300 * 1024, 'x');
  auto r = post_form(cli, "/api/enhance", {file_part("image", big, "big.png")});
  REQUIRE(r);
  CHECK(r->status == 413);

  // Small file, huge picture: refused from its header, before any pixel is decoded.
  auto wide = post_form(cli, "/api/enhance", {file_part("image", png_of(1200, 1000, 0), "wide.png")});
  REQUIRE(wide);
  CHECK(wide->status == 413);
  CHECK(json_of(wide)["error"].get<std::string>().find("1200x1000") != std::string::npos);
  CHECK(srv.output_files().empty());
}

TEST_CASE("serve: bad images, bad forms and bad parameters are refused with a reason", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  const std::string png = png_of(64, 48, 128);

  auto not_image = post_form(cli, "/api/enhance", {file_part("image", "just some text, not a picture", "a.png")});
  REQUIRE(not_image);
  CHECK(not_image->status == 415);

  std::string truncated = png.substr(0, 40);  // a PNG signature and header, then nothing
  auto broken = post_form(cli, "/api/enhance", {file_part("image", truncated, "broken.png")});
  REQUIRE(broken);
  CHECK((broken->status == 400));
  CHECK(!json_of(broken)["error"].get<std::string>().empty());

  auto wrong_type = post_form(cli, "/api/enhance", {file_part("image", png, "a.png", "text/html")});
  REQUIRE(wrong_type);
  CHECK(wrong_type->status == 415);

  auto not_multipart = cli.Post("/api/enhance", png, "image/png");
  REQUIRE(not_multipart);
  CHECK(not_multipart->status == 415);

  auto no_file = post_form(cli, "/api/enhance", {text_part("strength", "50")});
  REQUIRE(no_file);
  CHECK(no_file->status == 400);

  for (auto [field, value] : std::vector<std::pair<std::string, std::string>>{
           {"strength", "150"}, {"strength", "abc"}, {"mode", "vivid"}, {"quality", "0"}, {"colour", "red"}}) {
    auto r = post_form(cli, "/api/enhance", {file_part("image", png, "a.png"), text_part(field, value)});
    REQUIRE(r);
    INFO(field << "=" << value << " -> " << r->body);
    CHECK(r->status == 400);
    CHECK(json_of(r)["error"].get<std::string>().find(field) != std::string::npos);
  }
  // A field name that is not UTF-8 (a client chooses it) is echoed in the answer with U+FFFD, still
  // as the 400 it deserves (JSON's strict encoder once made it a 500). File names are shown
  // through display_name's safe alphabet.
  auto bad_name = post_form(cli, "/api/enhance", {file_part("image", png, "a.png"), text_part("str\xff" "ength", "5")});
  REQUIRE(bad_name);
  INFO(bad_name->body);
  CHECK(bad_name->status == 400);
  CHECK(json_of(bad_name)["error"].get<std::string>().find("str\xef\xbf\xbd" "ength") != std::string::npos);
  auto bad_value = post_form(cli, "/api/enhance", {file_part("image", png, "a.png"), text_part("mode", "\xc3\x28")});
  REQUIRE(bad_value);
  CHECK(bad_value->status == 400);
  auto bad_file = post_form(cli, "/api/enhance", {file_part("image", "not a picture", "caf\xe9.png")});
  REQUIRE(bad_file);
  CHECK(bad_file->status == 415);
  CHECK(json_of(bad_file)["error"].get<std::string>().find("caf_.png") != std::string::npos);  // display_name

  CHECK(srv.output_files().empty());
  auto health = cli.Get("/api/health");  // and the server is still fine
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE("serve: unknown jobs are 404", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  for (std::string path : {"/api/jobs/0123456789abcdef0123456789abcdef", "/api/jobs/0123456789abcdef0123456789abcdef/result.zip",
                           "/api/jobs/0123456789abcdef0123456789abcdef/images/0", "/api/jobs/../../etc/passwd",
                           "/api/jobs/xyz", "/api/nothing"}) {
    auto r = cli.Get(path);
    REQUIRE(r);
    INFO(path);
    CHECK(r->status == 404);
    CHECK(json_of(r).contains("error"));
  }
}

TEST_CASE("serve: a batch job reports progress per image and zips its results", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  const std::string face = read_file(test::shared_path("images/lowq_face_512.png"));
  auto r = post_form(cli, "/api/jobs", {file_part("images", face, "../../etc/passwd.png"), file_part("images", face, "b c.png"),
                                  file_part("images", "not an image at all but long enough", "x.png", "")});
  REQUIRE(r);
  CHECK(r->status == 415);  // one bad file refuses the whole batch before anything is queued

  r = post_form(cli, "/api/jobs", {file_part("images", face, "../../etc/passwd.png"), file_part("images", face, "b c.png"),
                             text_part("aligned", "1"), text_part("format", "webp")});
  REQUIRE(r);
  REQUIRE(r->status == 202);
  const std::string id = json_of(r)["id"];
  const Json st = wait_finished(cli, id);
  CHECK(st["total"] == 2);
  CHECK(st["done"] == 2);
  CHECK(st["progress"] == 1.0);
  CHECK(st["images"][0]["name"] == "passwd.png");  // the client's path is reduced to a display name
  CHECK(st["images"][1]["name"] == "b_c.png");

  auto img = cli.Get("/api/jobs/" + id + "/images/1");
  REQUIRE(img);
  CHECK(img->status == 200);
  CHECK(img->get_header_value("Content-Type") == "image/webp");

  auto zip = cli.Get("/api/jobs/" + id + "/result.zip");
  REQUIRE(zip);
  REQUIRE(zip->status == 200);
  CHECK(zip->get_header_value("Content-Type") == "application/zip");
  auto names = zip_entry_names(zip->body);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"b_c.webp", "passwd.webp"});

  // Only the outputs directory was written, with seed-style names.
  std::vector<std::string> top;
  for (const auto& e : fs::directory_iterator(srv.root)) top.push_back(e.path().filename().string());
  CHECK(top == std::vector<std::string>{"outputs"});
  const auto outs = srv.output_files();
  CHECK(outs.size() == 2);
  for (const auto& n : outs) CHECK(std::regex_match(n, std::regex(R"(outputs_\d{14}(_\d+)?\.webp)")));
}

TEST_CASE("serve: requests beyond the queue bound get 503 with Retry-After, the rest finish", "[serve]") {
  QueueConfig q;
  q.workers = 1;
  q.max_queued = 2;
  TestServer srv({}, q);
  srv.queue->set_paused(true);  // nothing starts, so the bound is reached deterministically
  const std::string png = png_of(64, 64, 90);

  constexpr int kClients = 8;
  std::vector<int> status(kClients, 0);
  std::vector<std::string> ids(kClients), retry(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      auto cli = srv.client();
      auto r = post_form(cli, "/api/jobs", {file_part("images", png, "p.png"), text_part("aligned", "true")});
      if (!r) return;
      status[i] = r->status;
      retry[i] = r->get_header_value("Retry-After");
      if (r->status == 202) ids[i] = Json::parse(r->body)["id"];
    });
  for (auto& t : clients) t.join();

  int accepted = 0, refused = 0;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << " status " << status[i]);
    if (status[i] == 202) ++accepted;
    if (status[i] == 503) {
      ++refused;
      CHECK(std::stoi(retry[i]) >= 1);
    }
  }
  CHECK(accepted == q.workers + q.max_queued);
  CHECK(refused == kClients - accepted);

  // A synchronous enhance is refused the same way while the queue is full.
  auto cli = srv.client();
  const std::string waiting = *std::find_if(ids.begin(), ids.end(), [](auto& id) { return !id.empty(); });
  auto queued = cli.Get("/api/jobs/" + waiting);
  REQUIRE(queued);
  CHECK(json_of(queued)["status"] == "queued");
  CHECK(json_of(queued).contains("queue_position"));
  auto early_zip = cli.Get("/api/jobs/" + waiting + "/result.zip");
  REQUIRE(early_zip);
  CHECK(early_zip->status == 409);
  auto sync = post_form(cli, "/api/enhance", {file_part("image", png, "p.png")});
  REQUIRE(sync);
  CHECK(sync->status == 503);

  srv.queue->set_paused(false);
  for (const auto& id : ids)
    if (!id.empty()) CHECK(wait_finished(cli, id)["done"] == 1);
  auto health = cli.Get("/api/health");
  REQUIRE(health);
  CHECK(json_of(health)["queue"]["jobs_refused"] == refused + 1);
}

TEST_CASE("serve: with a token, the API needs it and the page does not", "[serve]") {
  ServerConfig http;
  http.token = "s3cret-token";
  TestServer srv(http);
  auto cli = srv.client();
  auto anonymous = cli.Get("/api/health");
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);
  auto wrong = cli.Get("/api/health", {{"Authorization", "Bearer s3cret-tokem"}});
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto upload = post_form(cli, "/api/jobs", {file_part("images", png_of(8, 8, 0), "a.png")});
  REQUIRE(upload);
  CHECK(upload->status == 401);
  auto good = cli.Get("/api/health", {{"Authorization", "Bearer s3cret-token"}});
  REQUIRE(good);
  CHECK(good->status == 200);
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->body.find("<title>") != std::string::npos);

  ServerConfig open;
  open.host = "0.0.0.0";
  Engine engine(engine_config("", srv.root));
  OutputStore store(srv.root + "/unused");
  JobQueue queue(engine, store, Settings{}, {});
  CHECK_THROWS_WITH(HttpServer(open, queue, engine), Catch::Contains("--token"));
}

TEST_CASE("serve: settings, models and health describe the server", "[serve]") {
  TestServer srv;
  auto cli = srv.client();
  auto set = cli.Post("/api/settings", R"({"batch_size": 2, "output_format": "webp", "auto_download": true})",
                      "application/json");
  REQUIRE(set);
  REQUIRE(set->status == 200);
  auto got = json_of(cli.Get("/api/settings"));
  CHECK(got["batch_size"] == 2);
  CHECK(got["output_format"] == "webp");
  CHECK(got["auto_download"] == true);

  // "cuda" is refused where no GPU is usable (here, and in CI), with the module's reason.
  std::vector<std::string> refused = {R"({"batch_size": 0})", R"({"speed": 3})", R"({"device": "tpu"})", "not json", "[1]"};
  if (!CudaModule::instance().usable()) refused.push_back(R"({"device": "cuda"})");
  for (const std::string& body : refused) {
    auto r = cli.Post("/api/settings", body, "application/json");
    REQUIRE(r);
    INFO(body);
    CHECK(r->status == 400);
  }
  CHECK(json_of(cli.Get("/api/settings")) == got);  // a refused patch changes nothing

  auto health = json_of(cli.Get("/api/health"));
  CHECK(health["status"] == "ok");
  CHECK(health["devices"][0]["name"] == "cpu");
  CHECK(health["model"]["size"] == 32);
  auto models = json_of(cli.Get("/api/models"));
  CHECK(models["gpen"]["name"] == "gpen_tiny.pth");
  CHECK(models["detector"] == "retinaface_mobilenet0.25.pth");
  CHECK(models["catalogue"].size() >= 4);
  bool lists_gpen512 = false;
  for (const auto& m : models["catalogue"]) {
    CHECK(m["present"] == false);  // the test's model cache is empty
    lists_gpen512 |= m["name"] == "GPEN-BFR-512";
  }
  CHECK(lists_gpen512);
}

TEST_CASE("serve: output names follow the seed's pattern and never collide", "[serve]") {
  const std::string dir = fresh_dir("store");
  OutputStore store(dir);
  std::vector<uint8_t> a{1, 2, 3}, b{4, 5};
  std::set<std::string> names;
  for (int i = 0; i < 5; ++i) names.insert(store.save(i % 2 ? a : b, "png"));
  CHECK(names.size() == 5);
  for (const auto& n : names) CHECK(std::regex_match(n, std::regex(R"(outputs_\d{14}(_\d+)?\.png)")));
  CHECK(output_stem(0).size() == std::string("outputs_YYYYMMDDHHMMSS").size());
  fs::remove_all(dir);
}

TEST_CASE("serve: parameter parsing", "[serve]") {
  EnhanceParams p = parse_enhance_params({{"strength", "30"}, {"mode", "strong"}, {"contrast", "-20"},
                                          {"skin_protect", "false"}, {"max_faces", "3"}, {"warp", "cubic"}});
  CHECK(p.controls.strength == 30);
  CHECK(p.controls.mode == RestoreMode::Strong);
  CHECK(p.controls.contrast == -20);
  CHECK_FALSE(p.controls.skin_protect);
  CHECK(p.detect.max_faces == 3);
  CHECK(p.warp == WarpInterpolation::Cubic);
  CHECK_THROWS_AS(parse_enhance_params({{"max_faces", "1.5"}}), ParamError);
  CHECK_THROWS_AS(parse_enhance_params({{"brightness", "-101"}}), ParamError);
  CHECK_THROWS_AS(parse_enhance_params({{"strength", "nan"}}), ParamError);
  CHECK_THROWS_AS(parse_enhance_params({{"detail", "maybe"}}), ParamError);
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.1.2.3"));
  CHECK(is_loopback_host("::1"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("192.168.1.2"));
}

TEST_CASE("serve: on the GPU path (a stand-in here) concurrent photos share one GPEN runner and match the CPU's",
          "[serve]") {
  const std::string photo = read_file(test::shared_path("images/group_solvay_1927.png"));
  const auto enhance = [&](const TestServer& srv) {
    auto cli = srv.client();
    auto r = post_form(cli, "/api/enhance", {file_part("image", photo, "group.png"), text_part("strength", "100")});
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::make_pair(decode_image(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size()),
                          std::stoi(r->get_header_value("X-Gpen-Faces")));
  };

  TestServer cpu_srv({}, {}, [](EngineConfig& ec) { ec.device = "cpu"; });
  const auto [expected, faces] = enhance(cpu_srv);
  REQUIRE(faces > 8);
  CHECK(json_of(cpu_srv.client().Get("/api/health"))["device_in_use"] == "cpu");

  QueueConfig three;
  three.workers = 3;
  TestServer gpu_srv({}, three, [](EngineConfig& ec) { ec.accelerator = stand_in_gpu; });
  auto cli = gpu_srv.client();
  REQUIRE(cli.Post("/api/settings", R"({"batch_size": 16})", "application/json")->status == 200);
  std::vector<std::pair<Image, int>> got(3);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < got.size(); ++i) clients.emplace_back([&, i] { got[i] = enhance(gpu_srv); });
  for (std::thread& t : clients) t.join();
  for (const auto& [image, n] : got) {
    CHECK(n == faces);
    REQUIRE(image.pixels.size() == expected.pixels.size());
    // Batched differently, the same faces: floating-point rounding may move a byte by one.
    int worst = 0;
    for (size_t k = 0; k < image.pixels.size(); ++k)
      worst = std::max(worst, std::abs(int(image.pixels[k]) - int(expected.pixels[k])));
    CHECK(worst <= 1);
  }
  Json health = json_of(cli.Get("/api/health"));
  CHECK(health["device_in_use"] == "cuda");
  const Json gpu = health["devices"][1];
  CHECK(gpu["name"] == "cuda");
  CHECK(gpu["available"] == true);
  CHECK(gpu["gpen_faces"] == 3 * faces);  // every face of every photo went through the shared runner
  CHECK(gpu["largest_batch"] <= 16);
  CHECK(health["queue"]["last_image"]["device"] == "cuda");

  // The settings tab moves the next images to the CPU.
  REQUIRE(cli.Post("/api/settings", R"({"device": "cpu"})", "application/json")->status == 200);
  CHECK(enhance(gpu_srv).second == faces);
  health = json_of(cli.Get("/api/health"));
  CHECK(health["device_in_use"] == "cpu");
  CHECK(health["queue"]["last_image"]["device"] == "cpu");
  CHECK(health["devices"][1]["gpen_faces"] == 3 * faces);
}

TEST_CASE("serve: --device cuda sets the GPU up at start, or fails there with the reason", "[serve]") {
  const std::string root = fresh_dir("gpu");
  EngineConfig ec = engine_config("", root);
  ec.device = "cuda";
  if (CudaModule::instance().usable()) {  // the GPU machine
    Engine engine(ec);
    CHECK(engine.resolve(Device::Auto) == Device::Cuda);
    CHECK_THAT(engine.devices_json()[1]["detail"].get<std::string>(), Catch::Contains("cuda:0"));
    fs::remove_all(root);
    return;
  }
  CHECK_THROWS_WITH(Engine(ec), Catch::Contains("CUDA requested but unavailable"));
  ec.device = "auto";
  Engine engine(ec);
  std::string why;
  CHECK_FALSE(engine.gpu_usable(&why));
  CHECK(!why.empty());
  CHECK(engine.resolve(Device::Auto) == Device::Cpu);
  CHECK_THROWS_WITH(engine.resolve(Device::Cuda), Catch::Contains("CUDA requested but unavailable"));
  CHECK(engine.devices_json()[1]["available"] == false);
  fs::remove_all(root);
}
