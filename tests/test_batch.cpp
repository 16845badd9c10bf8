// The batch engine's guarantees (core/pipeline/batch.h): planning and naming, nothing lost (inputs
// untouched, atomic outputs, skip existing, bad files reported, write failures stop cleanly,
// cancellation finishes what is in flight and a rerun resumes), and that the overlapped pipeline
// gives the same pixels as restoring each photo alone. Uses the tiny GPEN and small crops of the
// group photo so that each case is quick.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/face_detector.h"
#include "core/image.h"
#include "core/models/gpen.h"
#include "core/pipeline/batch.h"
#include "core/pipeline/face_restorer.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace gpen;

namespace {

const std::string kTiny = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth");
const std::string kDetector = test::shared_path("weights/retinaface_mobilenet0.25.pth");

FaceRestorer& restorer() {
  static FaceRestorer r(std::make_shared<FaceDetector>(FaceDetector::load(kDetector)),
                        std::make_shared<GpenRunner>(std::make_shared<GpenModel>(GpenModel::load(kTiny)),
                                                     std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{}));
  return r;
}

std::string fresh_dir(const std::string& name) { return test::fresh_scratch("batch_test", name); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Crop `i` of the group photo: 260 px wide windows with a few faces each.
Image group_crop(int i) {
  static const Image full = load_image(test::shared_path("images/group_solvay_1927.png"));
  const int w = 260, x0 = (i * 170) % (full.width - w);
  Image out(w, full.height / 2, full.channels);
  const int y0 = (i % 2) * (full.height / 2);
  for (int y = 0; y < out.height; ++y)
    std::copy(full.row(y0 + y) + size_t(x0) * full.channels, full.row(y0 + y) + size_t(x0 + w) * full.channels, out.row(y));
  return out;
}

std::vector<std::string> write_photos(const std::string& dir, int n, const std::string& ext = ".png") {
  std::vector<std::string> paths;
  for (int i = 0; i < n; ++i) {
    paths.push_back(dir + "/photo" + std::to_string(i) + ext);
    save_image(paths.back(), group_crop(i));
  }
  return paths;
}

std::vector<BatchItem> plan_into(const std::vector<std::string>& inputs, const std::string& out_dir) {
  OutputNaming naming;
  naming.dir = out_dir;
  return plan_batch(BatchInputs{inputs, "", false}, naming);
}

// One worker per CPU stage, whatever the machine (the default follows the core count), so that
// the counts below ("at most this many in flight") hold everywhere; the multi-worker cases say so.
BatchOptions quick_options() {
  BatchOptions o;
  o.restore.controls.strength = 100;
  o.restore.batch_size = 3;
  o.prepare_workers = 1;
  o.finish_workers = 1;
  return o;
}

BatchOptions parallel_options(int workers) {
  BatchOptions o = quick_options();
  o.prepare_workers = workers;
  o.finish_workers = workers;
  return o;
}

int count_hidden_files(const std::string& dir) {
  int n = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) n += e.path().filename().string()[0] == '.';
  return n;
}

struct Run {
  int code;
  std::string err;
};

Run gpen_cli(const std::string& args, const std::string& shell_prefix = "") {
  const std::string err = fresh_dir("cli_stderr") + "/err.txt";
  const std::string cmd = shell_prefix + std::string(GPEN_CLI_PATH) + " " + args + " 2>" + err;
  const int status = std::system(("bash -c '" + cmd + "'").c_str());
  return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(err)};
}

std::string cli_model_args() { return " --model " + kTiny + " --detector " + kDetector + " --threads 2 --strength 100"; }

}  // namespace

TEST_CASE("plan: folders, recursion, hidden files, list file, suffix and format", "[batch]") {
  const std::string in = fresh_dir("plan_in");
  fs::create_directories(in + "/sub/deeper");
  fs::create_directories(in + "/.cache");
  for (const char* f : {"a.png", "b.JPG", "notes.txt", ".hidden.png", "sub/c.webp", "sub/deeper/d.jpeg", ".cache/e.png"})
    std::ofstream(in + "/" + f) << "x";
  OutputNaming naming;
  naming.dir = "/out";
  std::vector<BatchItem> flat = plan_batch(BatchInputs{{in}, "", false}, naming);
  REQUIRE(flat.size() == 2);
  CHECK(flat[0].output == "/out/a.png");
  CHECK(flat[1].output == "/out/b.jpg");  // the input's format, extension in lower case

  naming.suffix = "_gpen";
  naming.format = "webp";
  std::vector<BatchItem> deep = plan_batch(BatchInputs{{in}, "", true}, naming);
  std::vector<std::string> outs;
  for (const BatchItem& it : deep) outs.push_back(it.output);
  CHECK(outs == std::vector<std::string>{"/out/a_gpen.webp", "/out/b_gpen.webp", "/out/sub/c_gpen.webp",
                                         "/out/sub/deeper/d_gpen.webp"});

  const std::string list = in + "/list.txt";
  std::ofstream(list) << "# photos\n" << in << "/a.png\n\n  " << in << "/sub/c.webp  \r\n" << in << "/missing.png\n";
  naming = OutputNaming{};
  naming.dir = "/out";
  std::vector<BatchItem> listed = plan_batch(BatchInputs{{}, list, false}, naming);
  REQUIRE(listed.size() == 3);
  CHECK(listed[1].output == "/out/c.webp");
  CHECK(listed[0].error.empty());
  CHECK(listed[2].error.find("no such file") != std::string::npos);
  CHECK_THROWS_AS(plan_batch(BatchInputs{{}, in + "/nope.txt", false}, naming), Error);
}

TEST_CASE("plan: TIFF, BMP and HEIF/AVIF inputs; HEIF/AVIF outputs default to JPEG", "[batch]") {
  const std::string in = fresh_dir("plan_formats");
  for (const char* f : {"a.tif", "b.TIFF", "c.bmp", "d.heic", "e.avif", "f.gif"}) std::ofstream(in + "/" + f) << "x";
  OutputNaming naming;
  naming.dir = "/out";
  std::vector<std::string> outs;
  for (const BatchItem& it : plan_batch(BatchInputs{{in}, "", false}, naming)) outs.push_back(it.output);
  CHECK(outs == std::vector<std::string>{"/out/a.tif", "/out/b.tiff", "/out/c.bmp", "/out/d.jpg", "/out/e.jpg"});
  naming.format = "tif";
  CHECK(plan_batch(BatchInputs{{in + "/d.heic"}, "", false}, naming)[0].output == "/out/d.tif");
  naming.format = "heic";
  CHECK_THROWS_WITH(plan_batch(BatchInputs{{in + "/a.tif"}, "", false}, naming), Catch::Contains("unknown output format"));
  naming = OutputNaming{};
  naming.file = "/out/x.heic";
  CHECK_THROWS_WITH(plan_batch(BatchInputs{{in + "/a.tif"}, "", false}, naming), Catch::Contains("does not write"));
}

TEST_CASE("batch: outputs keep the input's ICC profile, EXIF and density; keep_metadata=false drops them", "[batch]") {
  const std::string in = fresh_dir("meta_in"), out = fresh_dir("meta_out"), bare = fresh_dir("meta_bare");
  const ImageMetadata meta = load_image(test::shared_path("images/group_solvay_1927.png")).meta;  // ICC, EXIF, 144 dpi
  REQUIRE((!meta.icc.empty() && !meta.exif.empty()));
  Image photo = group_crop(0);
  photo.meta = meta;
  save_image(in + "/scan.tif", photo);
  save_image(in + "/snap.jpg", photo);
  BatchOptions o = quick_options();
  o.max_size = 142;  // the long side (284) halved: the density halves with it, so the print size stays
  const BatchSummary s = run_batch(restorer(), plan_into({in + "/scan.tif", in + "/snap.jpg"}, out), o);
  REQUIRE(s.progress.done == 2);
  const Image tif = load_image(out + "/scan.tif"), jpg = load_image(out + "/snap.jpg");
  CHECK(tif.width == 130);
  CHECK(tif.meta.icc == meta.icc);
  CHECK(tif.meta.dpi_x == Approx(72.0).margin(0.5));
  CHECK(jpg.meta.icc == meta.icc);
  CHECK(!jpg.meta.exif.empty());
  CHECK(jpg.meta.dpi_x == Approx(72.0).margin(0.5));
  // The scan's profile ("Display", a monitor profile close to sRGB) is not sRGB: faces found go
  // through GPEN in sRGB, and the report says so; a photo without faces converted nothing. (At
  // 142 px the faces are marginal: the ASan build's detector missed them in one run. The CLI
  // test below checks the profile on a photo whose faces are always found.)
  const auto report = batch_report(s);  // kept: a range-for over a temporary's member would dangle
  for (const auto& item : report["items"]) {
    if (item["faces"].get<int>() > 0) CHECK(item["colour_profile"] == "Display");
    else CHECK_FALSE(item.contains("colour_profile"));
  }

  o.keep_metadata = false;
  REQUIRE(run_batch(restorer(), plan_into({in + "/scan.tif", in + "/snap.jpg"}, bare), o).progress.done == 2);
  CHECK(load_image(bare + "/scan.tif").meta.empty());
  CHECK(load_image(bare + "/snap.jpg").meta.empty());
}

TEST_CASE("plan: an output never overwrites an input, two inputs never share an output", "[batch]") {
  const std::string in = fresh_dir("plan_clash");
  fs::create_directories(in + "/x");
  for (const char* f : {"a.png", "a.jpg", "x/a.png"}) std::ofstream(in + "/" + f) << "x";
  OutputNaming naming;
  naming.dir = in;  // writing into the input folder
  std::vector<BatchItem> items = plan_batch(BatchInputs{{in + "/a.png", in + "/a.jpg"}, "", false}, naming);
  CHECK(items[0].error.find("would overwrite an input") != std::string::npos);
  CHECK(items[1].error.find("would overwrite an input") != std::string::npos);
  naming.format = "png";
  naming.dir = in + "/out";
  items = plan_batch(BatchInputs{{in + "/a.png", in + "/a.jpg", in + "/x/a.png"}, "", false}, naming);
  CHECK(items[0].error.empty());
  CHECK(items[1].error.find("same output name as") != std::string::npos);
  CHECK(items[2].error.find("same output name as") != std::string::npos);
  naming.dir = in;
  naming.suffix = "_restored";  // with a suffix the input folder is fine
  CHECK(plan_batch(BatchInputs{{in + "/a.png"}, "", false}, naming)[0].error.empty());
}

TEST_CASE("batch: a corrupt file in the middle is reported, the others are restored, inputs untouched", "[batch]") {
  const std::string in = fresh_dir("corrupt_in"), out = fresh_dir("corrupt_out");
  std::vector<std::string> inputs = write_photos(in, 4);
  std::ofstream(in + "/broken.png", std::ios::binary) << slurp(inputs[1]).substr(0, 500);  // truncated PNG
  inputs.insert(inputs.begin() + 2, in + "/broken.png");
  std::vector<std::string> before;
  for (const std::string& p : inputs) before.push_back(slurp(p));

  const BatchSummary s = run_batch(restorer(), plan_into(inputs, out), quick_options());
  REQUIRE(s.items.size() == 5);
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO(inputs[i] << ": " << s.items[i].error);
    CHECK(slurp(inputs[i]) == before[i]);
    CHECK(s.items[i].status == (i == 2 ? ItemStatus::Failed : ItemStatus::Done));
  }
  CHECK(s.items[2].error.find("broken.png") != std::string::npos);
  CHECK(!fs::exists(out + "/broken.png"));
  CHECK(load_image(out + "/photo3.png").width == 260);
  CHECK(batch_exit_code(s) == 3);
  CHECK(count_hidden_files(out) == 0);  // no temporary file left behind

  const auto report = batch_report(s);
  CHECK(report["summary"]["done"] == 4);
  CHECK(report["summary"]["failed"] == 1);
  REQUIRE(report["items"].size() == 5);
  CHECK(report["items"][2]["status"] == "failed");
  CHECK(report["items"][0]["faces"].get<int>() == s.items[0].faces);
  CHECK(report["items"][0]["error"].is_null());
}

TEST_CASE("batch: the overlapped pipeline gives each photo's own restore() result", "[batch]") {
  const std::string in = fresh_dir("same_in"), out = fresh_dir("same_out");
  const std::vector<std::string> inputs = write_photos(in, 3);
  BatchOptions o = quick_options();
  o.restore.controls.strength = 70;
  o.restore.controls.sharpen = 20;
  size_t callbacks = 0;
  o.on_item = [&](const ItemResult&, const BatchProgress& p) {
    ++callbacks;
    CHECK(p.finished == callbacks);
  };
  const BatchSummary s = run_batch(restorer(), plan_into(inputs, out), o);
  CHECK(callbacks == 3);
  size_t faces = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE(s.items[i].status == ItemStatus::Done);
    const RestoreResult alone = restorer().restore(load_image(inputs[i]), o.restore);
    CHECK(load_image(s.items[i].output).pixels == alone.image.pixels);
    CHECK(size_t(s.items[i].faces) == alone.faces.size());
    faces += alone.faces.size();
  }
  CHECK(faces > 3);  // batches of 3 faces spanned photos
  CHECK(s.progress.faces == faces);
}

TEST_CASE("batch: several workers per stage give the outputs and report of one", "[batch]") {
  const std::string in = fresh_dir("workers_in"), one = fresh_dir("workers_one"), many = fresh_dir("workers_many");
  std::vector<std::string> inputs = write_photos(in, 6);
  std::ofstream(in + "/broken.png", std::ios::binary) << slurp(inputs[0]).substr(0, 300);
  inputs.insert(inputs.begin() + 3, in + "/broken.png");
  std::ofstream(many + "/photo5.png") << "an earlier result";  // skipped in the parallel run only
  std::ofstream(one + "/photo5.png") << "an earlier result";

  const BatchSummary serial = run_batch(restorer(), plan_into(inputs, one), quick_options());
  BatchOptions o = parallel_options(3);
  size_t callbacks = 0;
  o.on_item = [&](const ItemResult& r, const BatchProgress& p) {
    ++callbacks;
    CHECK(p.finished == callbacks);  // one call at a time, counting every status
    CHECK(r.status != ItemStatus::Pending);
  };
  const BatchSummary parallel = run_batch(restorer(), plan_into(inputs, many), o);
  CHECK(callbacks == inputs.size());
  REQUIRE(parallel.items.size() == serial.items.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ItemResult &a = serial.items[i], &b = parallel.items[i];
    INFO(inputs[i]);
    CHECK(b.input == inputs[i]);  // recorded at its input's index, whatever order it finished in
    CHECK(b.status == a.status);
    CHECK(b.faces == a.faces);
    CHECK(b.error == a.error);
    if (a.status == ItemStatus::Done) CHECK(slurp(b.output) == slurp(a.output));  // byte for byte
  }
  CHECK(parallel.items[3].status == ItemStatus::Failed);
  CHECK(parallel.items[6].status == ItemStatus::Skipped);
  CHECK(parallel.progress.done == 5);
  CHECK(parallel.progress.faces == serial.progress.faces);
  CHECK(parallel.progress.faces > 5);  // GPEN batches of 3 spanned photos
  CHECK(batch_exit_code(parallel) == 3);
  CHECK(count_hidden_files(many) == 0);
}

TEST_CASE("batch: two GPEN streams (twin runners, each filling its own batches) give the outputs of one",
          "[batch]") {
  const std::string in = fresh_dir("streams_in"), one = fresh_dir("streams_one"), two = fresh_dir("streams_two");
  const std::vector<std::string> inputs = write_photos(in, 7);
  const BatchSummary serial = run_batch(restorer(), plan_into(inputs, one), quick_options());
  BatchOptions o = parallel_options(2);
  o.gpen_streams = 2;
  const BatchSummary streams = run_batch(restorer(), plan_into(inputs, two), o);
  REQUIRE(streams.items.size() == inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO(inputs[i]);
    CHECK(streams.items[i].status == ItemStatus::Done);
    CHECK(streams.items[i].faces == serial.items[i].faces);
    CHECK(slurp(streams.items[i].output) == slurp(serial.items[i].output));  // byte for byte
  }
  CHECK(streams.progress.faces == serial.progress.faces);
  CHECK(count_hidden_files(two) == 0);
}

TEST_CASE("batch: with several workers a write failure and a cancel still lose nothing", "[batch]") {
  const std::string in = fresh_dir("workers_stop_in"), out = fresh_dir("workers_stop_out");
  const std::vector<std::string> inputs = write_photos(in, 10);
  BatchOptions o = parallel_options(3);
  std::atomic<int> writes{0};
  o.write_file = [&](const std::string& path, const std::vector<uint8_t>& bytes) {
    if (++writes == 3) throw OutputError("cannot write " + path + ": No space left on device");
    write_file_atomic(path, bytes);
  };
  const BatchSummary full = run_batch(restorer(), plan_into(inputs, out), o);
  CHECK(batch_exit_code(full) == 1);
  CHECK(full.fatal_error.find("No space left on device") != std::string::npos);
  CHECK(full.progress.done >= 2);  // the writes before the failing one
  CHECK(full.progress.failed == 1);
  for (const ItemResult& r : full.items) {
    if (r.status == ItemStatus::Done) CHECK(load_image(r.output).width == 260);
    else CHECK(!fs::exists(r.output));
  }
  CHECK(count_hidden_files(out) == 0);

  std::atomic<bool> cancel{false};
  BatchOptions c = parallel_options(3);
  c.cancel = &cancel;
  c.on_item = [&](const ItemResult& r, const BatchProgress&) {
    if (r.status == ItemStatus::Done) cancel = true;
  };
  const BatchSummary cancelled = run_batch(restorer(), plan_into(inputs, out), c);
  CHECK(batch_exit_code(cancelled) == 130);
  for (const ItemResult& r : cancelled.items)
    CHECK((r.status == ItemStatus::Done || r.status == ItemStatus::Skipped || r.status == ItemStatus::NotProcessed));
  const BatchSummary rest = run_batch(restorer(), plan_into(inputs, out), parallel_options(3));
  CHECK(batch_exit_code(rest) == 0);
  CHECK(rest.progress.skipped + rest.progress.done == 10);
  for (const std::string& p : inputs) CHECK(load_image(out + "/" + fs::path(p).filename().string()).width == 260);
  CHECK(count_hidden_files(out) == 0);
}

TEST_CASE("batch: existing outputs are skipped unless overwrite", "[batch]") {
  const std::string in = fresh_dir("skip_in"), out = fresh_dir("skip_out");
  const std::vector<std::string> inputs = write_photos(in, 2);
  std::ofstream(out + "/photo0.png") << "an earlier result";
  BatchSummary s = run_batch(restorer(), plan_into(inputs, out), quick_options());
  CHECK(s.items[0].status == ItemStatus::Skipped);
  CHECK(s.items[1].status == ItemStatus::Done);
  CHECK(slurp(out + "/photo0.png") == "an earlier result");
  CHECK(batch_exit_code(s) == 0);
  BatchOptions o = quick_options();
  o.overwrite = true;
  s = run_batch(restorer(), plan_into(inputs, out), o);
  CHECK(s.items[0].status == ItemStatus::Done);
  CHECK(load_image(out + "/photo0.png").width == 260);
}

TEST_CASE("batch: --max-size caps the long side before processing", "[batch]") {
  const std::string in = fresh_dir("max_in"), out = fresh_dir("max_out");
  const std::vector<std::string> inputs = write_photos(in, 1);
  BatchOptions o = quick_options();
  o.max_size = 200;
  const BatchSummary s = run_batch(restorer(), plan_into(inputs, out), o);
  const Image img = load_image(s.items[0].output);
  CHECK(std::max(img.width, img.height) == 200);
  CHECK(img.width == 183);  // 260 x 284 scaled by 200 / 284: 183.1 wide
}

TEST_CASE("batch: a write failure (disk full) stops the batch cleanly with no partial file", "[batch]") {
  const std::string in = fresh_dir("full_in"), out = fresh_dir("full_out");
  const std::vector<std::string> inputs = write_photos(in, 5);
  BatchOptions o = quick_options();
  int writes = 0;
  o.write_file = [&](const std::string& path, const std::vector<uint8_t>& bytes) {
    if (++writes == 2) throw OutputError("cannot write " + path + ": No space left on device");
    write_file_atomic(path, bytes);
  };
  const BatchSummary s = run_batch(restorer(), plan_into(inputs, out), o);
  CHECK(s.fatal_error.find("No space left on device") != std::string::npos);
  CHECK(batch_exit_code(s) == 1);
  CHECK(s.progress.done == 1);
  size_t not_processed = 0;
  for (const ItemResult& r : s.items) {
    not_processed += r.status == ItemStatus::NotProcessed;
    if (r.status == ItemStatus::Done) CHECK(load_image(r.output).width == 260);
    else CHECK(!fs::exists(r.output));
  }
  CHECK(not_processed >= 2);
  CHECK(count_hidden_files(out) == 0);
}

TEST_CASE("write_file_atomic and ensure_writable_dir: unwritable places give a clear OutputError", "[batch]") {
  const std::string dir = fresh_dir("unwritable");
  std::ofstream(dir + "/a_file") << "x";
  // Root ignores permission bits, so "unwritable" here is a path through a regular file.
  CHECK_THROWS_WITH(ensure_writable_dir(dir + "/a_file/out"), Catch::Contains("Not a directory"));
  CHECK_THROWS_AS(write_file_atomic(dir + "/a_file/x.png", {1, 2, 3}), OutputError);
  CHECK_THROWS_AS(ensure_writable_dir("/proc/gpen_out"), OutputError);
  write_file_atomic(dir + "/ok.bin", {1, 2, 3});
  CHECK(slurp(dir + "/ok.bin") == std::string("\x01\x02\x03"));
  CHECK(count_hidden_files(dir) == 0);
}

TEST_CASE("batch: cancel finishes the photos in flight, a rerun resumes", "[batch]") {
  const std::string in = fresh_dir("cancel_in"), out = fresh_dir("cancel_out");
  const std::vector<std::string> inputs = write_photos(in, 12);  // more than can be in flight (queues of 2, three stages)
  std::atomic<bool> cancel{false};
  BatchOptions o = quick_options();
  o.cancel = &cancel;
  o.on_item = [&](const ItemResult& r, const BatchProgress&) {
    if (r.status == ItemStatus::Done) cancel = true;  // "Ctrl-C" after the first photo
  };
  const BatchSummary first = run_batch(restorer(), plan_into(inputs, out), o);
  CHECK(first.cancelled);
  CHECK(batch_exit_code(first) == 130);
  CHECK(first.progress.done >= 1);
  CHECK(first.progress.done < 12);
  for (const ItemResult& r : first.items)
    CHECK((r.status == ItemStatus::Done || r.status == ItemStatus::NotProcessed));
  CHECK(count_hidden_files(out) == 0);

  const BatchSummary second = run_batch(restorer(), plan_into(inputs, out), quick_options());
  CHECK(second.progress.skipped == first.progress.done);
  CHECK(second.progress.done == 12 - first.progress.done);
  for (const std::string& p : inputs) CHECK(load_image(out + "/" + fs::path(p).filename().string()).width == 260);
}

TEST_CASE("gpen enhance: a real SIGINT finishes the current photos, exit 130; the rerun resumes", "[batch][cli]") {
  const std::string in = fresh_dir("sigint_in"), out = fresh_dir("sigint_out");
  write_photos(in, 24);
  const std::string log = fresh_dir("sigint_log") + "/err.txt";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::freopen(log.c_str(), "w", stderr);
    ::execl(GPEN_CLI_PATH, "gpen", "enhance", in.c_str(), "-o", out.c_str(), "--model", kTiny.c_str(), "--detector",
            kDetector.c_str(), "--threads", "1", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for the first finished output, then press "Ctrl-C".
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (fs::is_empty(out) || count_hidden_files(out) == int(std::distance(fs::directory_iterator(out), {}))) {
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  INFO(slurp(log));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(slurp(log).find("stopping after the photos in progress") != std::string::npos);
  CHECK(count_hidden_files(out) == 0);
  int done = 0;
  for (auto& e : fs::directory_iterator(out)) {
    CHECK(load_image(e.path().string()).width == 260);  // complete files only
    ++done;
  }
  CHECK(done >= 1);
  CHECK(done < 24);

  const std::string report = fresh_dir("sigint_report") + "/r.json";
  Run rerun = gpen_cli("enhance " + in + " -o " + out + cli_model_args() + " --report " + report);
  INFO(rerun.err);
  CHECK(rerun.code == 0);
  const auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["summary"]["skipped"] == done);
  CHECK(j["summary"]["done"] == 24 - done);
}

TEST_CASE("gpen enhance --workers: several photos at once; the report says where each one's time went", "[batch][cli]") {
  const std::string in = fresh_dir("cli_workers_in"), out = fresh_dir("cli_workers_out");
  write_photos(in, 3);
  const std::string report = fresh_dir("cli_workers_report") + "/r.json";
  Run r = gpen_cli("enhance " + in + " -o " + out + cli_model_args() + " --workers 2 --report " + report);
  INFO(r.err);
  CHECK(r.code == 0);
  const auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["summary"]["done"] == 3);
  for (const auto& item : j["items"]) {
    const auto& st = item["stages_ms"];
    for (const char* stage : {"decode", "detect", "align", "gpen", "paste", "encode", "write"}) {
      INFO(stage);
      REQUIRE(st.contains(stage));
      CHECK(st[stage].get<double>() >= 0);
    }
    CHECK(st["detect"].get<double>() > 0);
    if (item["faces"].get<int>() > 0) CHECK(st["gpen"].get<double>() > 0);
    CHECK(load_image(item["output"].get<std::string>()).width == 260);
  }
  CHECK(gpen_cli("enhance " + in + " -o " + out + cli_model_args() + " --workers -1").code != 0);
}

TEST_CASE("gpen enhance: a 16-bit scan stays 16-bit unless --8bit; --strip-metadata drops the profile", "[batch][cli]") {
  const std::string in = fresh_dir("cli_16bit_in"), out = fresh_dir("cli_16bit_out"), out8 = fresh_dir("cli_16bit_out8");
  Image scan = group_crop(4);  // a face the detector finds with score 0.998 (crop 0: 0.917, marginal)
  scan.meta = load_image(test::shared_path("images/group_solvay_1927.png")).meta;  // its "Display" ICC profile
  auto samples = std::make_shared<Samples16>();
  samples->width = scan.width, samples->height = scan.height, samples->channels = scan.channels;
  for (uint8_t v : scan.pixels) samples->data.push_back(uint16_t(v * 257 + 77));
  scan.samples16 = samples;
  save_image(in + "/scan.png", scan);
  const std::string report = fresh_dir("cli_16bit_report") + "/r.json";
  Run r = gpen_cli("enhance " + in + " -o " + out + cli_model_args() + " --report " + report);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const Image deep = load_image(out + "/scan.png");
  CHECK(deep.samples16);
  CHECK(deep.meta.icc == scan.meta.icc);
  const auto j = nlohmann::json::parse(slurp(report));
  REQUIRE(j["items"][0]["faces"].get<int>() > 0);
  CHECK(j["items"][0]["colour_profile"] == "Display");
  CHECK(r.err.find("[faces restored in sRGB, from Display]") != std::string::npos);

  r = gpen_cli("enhance " + in + " -o " + out8 + cli_model_args() + " --8bit --strip-metadata");
  REQUIRE(r.code == 0);
  const Image shallow = load_image(out8 + "/scan.png");
  CHECK_FALSE(shallow.samples16);
  CHECK(shallow.meta.icc.empty());
  CHECK(shallow.meta.exif.empty());
}

TEST_CASE("gpen enhance: an unwritable output folder stops before any work, nothing written", "[batch][cli]") {
  const std::string in = fresh_dir("nowrite_in"), dir = fresh_dir("nowrite");
  write_photos(in, 1);
  std::ofstream(dir + "/file") << "x";
  Run r = gpen_cli("enhance " + in + " -o " + dir + "/file/out" + cli_model_args());
  CHECK(r.code == 1);
  CHECK(r.err.find("gpen: error: cannot create output folder") != std::string::npos);
  CHECK(r.err.find("Not a directory") != std::string::npos);
}

TEST_CASE("gpen enhance: a real write failure (file size limit) stops cleanly, no partial file", "[batch][cli]") {
  const std::string in = fresh_dir("fsize_in"), out = fresh_dir("fsize_out");
  write_photos(in, 3);
  // ulimit -f 64: files past 64 KiB cannot grow (EFBIG), like a disk that fills up mid-write.
  // The PNG outputs are ~150 KB; the report is small enough to be written.
  const std::string report = out + "/../fsize_report.json";
  Run r = gpen_cli("enhance " + in + " -o " + out + cli_model_args() + " --report " + report, "ulimit -f 64; ");
  INFO(r.err);
  CHECK(r.code == 1);
  CHECK(r.err.find("File too large") != std::string::npos);
  CHECK(r.err.find("stopped") != std::string::npos);
  CHECK(fs::is_empty(out));  // neither outputs nor temporary files
  const auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["summary"]["stopped_by"].get<std::string>().find("File too large") != std::string::npos);
  CHECK(j["summary"]["done"] == 0);
}

// The report's rates from the finish times alone: a first batch finishing in a burst right after
// the first result inflates the rate after the first photo; the steady rate starts once a quarter
// of the photos are done. Failed photos do not count.
TEST_CASE("batch report: first result, rate after it and the steady rate", "[batch]") {
  BatchSummary s;
  auto add = [&](ItemStatus status, double t) {
    ItemResult r;
    r.status = status;
    r.finished_s = t;
    s.items.push_back(r);
  };
  // 4 photos of a first batch at 2.00-2.03 s, then one every 0.5 s: 2.5, 3.0, ..., 6.0 (8 more).
  for (int i = 0; i < 4; ++i) add(ItemStatus::Done, 2.0 + 0.01 * i);
  for (int i = 1; i <= 8; ++i) add(ItemStatus::Done, 2.0 + 0.5 * i);
  add(ItemStatus::Failed, 1.0);  // earlier than any result: ignored
  std::swap(s.items[0], s.items[7]);  // finish order need not be item order
  const auto summary = batch_report(s)["summary"];
  CHECK(summary["first_result_s"].get<double>() == Approx(2.0));
  CHECK(summary["photos_per_s_after_first"].get<double>() == Approx(11.0 / 4.0));
  // A quarter of 12 done is 3: from the 4th result (2.03 s) to the last (6.0 s), 8 photos.
  CHECK(summary["photos_per_s_steady"].get<double>() == Approx(8.0 / 3.97).epsilon(0.01));

  BatchSummary few;
  for (int i = 0; i < 7; ++i) {
    ItemResult r;
    r.status = ItemStatus::Done;
    r.finished_s = 1.0 + i;
    few.items.push_back(r);
  }
  CHECK_FALSE(batch_report(few)["summary"].contains("photos_per_s_steady"));  // under 8 photos
}
