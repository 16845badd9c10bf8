// libgpen's C API (include/gpen.h): results equal the C++ engine's, errors are statuses with a
// message (never an exception or a crash), and the C example program built against libgpen.so runs.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "core/pipeline/adjustments.h"
#include "core/pipeline/face_restorer.h"
#include "gpen.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace gpen;

namespace {

const std::string kTiny = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth");
const std::string kDetector = test::shared_path("weights/retinaface_mobilenet0.25.pth");
const std::string kGroup = test::shared_path("images/group_solvay_1927.png");

std::string scratch() { return test::process_scratch("capi_test"); }

// A C-API context that closes itself.
struct Context {
  gpen_context* ctx = nullptr;
  explicit Context(const std::string& model, const char* detector = nullptr) {
    gpen_options o;
    gpen_options_init(&o);
    o.model = model.c_str();
    o.detector = detector;
    o.offline = 1;
    o.threads = 2;
    const gpen_status s = gpen_open(&o, &ctx);
    INFO(gpen_last_error());
    REQUIRE(s == GPEN_OK);
  }
  ~Context() { gpen_close(ctx); }
};

gpen_image view_of(Image& img) {
  return gpen_image{img.width, img.height, img.channels, img.row_bytes(), img.pixels.data()};
}

std::vector<uint8_t> pixels_of(const gpen_image& img) {
  std::vector<uint8_t> v;
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* row = img.data + size_t(y) * img.stride;
    v.insert(v.end(), row, row + size_t(img.width) * size_t(img.channels));
  }
  return v;
}

}  // namespace

TEST_CASE("C API: an aligned face equals the engine's GPEN output at strength 100", "[capi]") {
  Context c(kTiny);
  GpenModel model = GpenModel::load(kTiny);
  const int S = model.config().size;
  Image face(S, S, 3);
  auto noise = test::random_floats(face.pixels.size(), 11, 0, 255);
  for (size_t i = 0; i < noise.size(); ++i) face.pixels[i] = uint8_t(noise[i]);

  GpenRunner runner(std::make_shared<GpenModel>(model), std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  const Image expected = tensor_to_face(runner.forward(faces_to_tensor({&face})), 0);

  gpen_enhance_options e;
  gpen_enhance_options_init(&e);
  e.aligned = 1;
  e.strength = 100;
  e.mode = GPEN_MODE_STRONG;
  e.sharpen = 30;
  e.contrast = 10;
  gpen_image in = view_of(face), out{};
  int faces = -1;
  REQUIRE(gpen_enhance_image(c.ctx, &in, &e, &out, &faces) == GPEN_OK);
  CHECK(faces == 1);
  CHECK(out.width == S);
  CHECK(out.channels == 3);
  // What `gpen enhance --aligned` makes of GPEN's output with the same controls.
  Controls controls;
  controls.strength = 100;
  controls.mode = RestoreMode::Strong;
  controls.sharpen = 30;
  controls.contrast = 10;
  const Image composed = restore_aligned_crop(runner, face, controls);
  CHECK(pixels_of(out) == composed.pixels);
  // Natural at 100 with every filter off is exactly GPEN's own output.
  controls.sharpen = controls.contrast = 0;
  controls.skin_protect = false;
  controls.mode = RestoreMode::Natural;
  CHECK(restore_aligned_crop(runner, face, controls).pixels == expected.pixels);
  CHECK(pixels_of(out) != face.pixels);
  gpen_image_free(&out);
  CHECK(out.data == nullptr);
  e.strength = 0;
  e.sharpen = e.contrast = 0;
  REQUIRE(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_OK);
  CHECK(pixels_of(out) == face.pixels);  // strength 0: the input unchanged
  gpen_image_free(&out);
}

TEST_CASE("C API: whole photos go through detection and paste-back", "[capi]") {
  Context c(kTiny, kDetector.c_str());
  gpen_image photo{};
  REQUIRE(gpen_image_load(kGroup.c_str(), &photo) == GPEN_OK);
  gpen_enhance_options e;
  gpen_enhance_options_init(&e);
  e.strength = 100;
  gpen_image out{};
  int faces = 0;
  REQUIRE(gpen_enhance_image(c.ctx, &photo, &e, &out, &faces) == GPEN_OK);
  CHECK(faces > 5);  // the Solvay photo has many faces
  CHECK(out.width == photo.width);
  CHECK(out.height == photo.height);
  CHECK(pixels_of(out) != pixels_of(photo));
  const std::string saved = scratch() + "/capi_out.png";
  REQUIRE(gpen_image_save(saved.c_str(), &out) == GPEN_OK);
  CHECK(load_image(saved).pixels == pixels_of(out));
  gpen_image_free(&out);
  gpen_image_free(&photo);
}

TEST_CASE("C API: bad arguments and files are statuses with messages", "[capi]") {
  gpen_context* ctx = reinterpret_cast<gpen_context*>(0x1);
  gpen_options o;
  gpen_options_init(&o);
  CHECK(gpen_open(&o, &ctx) == GPEN_ERROR_INVALID_ARGUMENT);
  CHECK(ctx == nullptr);
  CHECK_THAT(gpen_last_error(), Catch::Contains("model is required"));
  CHECK(gpen_open(nullptr, &ctx) == GPEN_ERROR_INVALID_ARGUMENT);

  o.model = "/no/such/model.pth";
  o.offline = 1;
  CHECK(gpen_open(&o, &ctx) == GPEN_ERROR_MODEL);
  CHECK_THAT(gpen_last_error(), Catch::Contains("/no/such/model.pth"));
  o.model = "GPEN-BFR-2048";
  o.models_dir = "/nonexistent-gpen-cache";
  CHECK(gpen_open(&o, &ctx) == GPEN_ERROR_MODEL);
  CHECK_THAT(gpen_last_error(), Catch::Contains("--offline"));

  gpen_image img{};
  CHECK(gpen_image_load("/no/such/image.png", &img) == GPEN_ERROR_IMAGE);
  CHECK(std::strlen(gpen_last_error()) > 0);
  CHECK(std::string(gpen_status_string(GPEN_ERROR_IMAGE)) == "image error");

  Context c(kTiny);
  Image small(8, 8, 3);
  gpen_image in = view_of(small), out{};
  gpen_enhance_options e;
  gpen_enhance_options_init(&e);
  CHECK(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_ERROR_INVALID_ARGUMENT);  // no detector
  CHECK_THAT(gpen_last_error(), Catch::Contains("detector"));
  e.aligned = 1;
  e.strength = 101;
  CHECK(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(gpen_last_error(), Catch::Contains("strength"));
  e.strength = 50;
  e.mode = 7;
  CHECK(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(gpen_last_error(), Catch::Contains("mode"));
  e.mode = GPEN_MODE_STRONG;
  e.det_threshold = 2;
  CHECK(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_ERROR_INVALID_ARGUMENT);
  e.det_threshold = 0.5f;
  in.channels = 2;
  CHECK(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_ERROR_INVALID_ARGUMENT);
  in.channels = 3;
  in.stride = 5;
  CHECK(gpen_enhance_image(c.ctx, &in, &e, &out, nullptr) == GPEN_ERROR_INVALID_ARGUMENT);
  CHECK(out.data == nullptr);
  gpen_image_free(nullptr);  // harmless
}

TEST_CASE("the C example program restores an aligned face through libgpen.so", "[capi]") {
  Image face = to_rgb(load_image(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.aligned_in.png")));
  const std::string out = scratch() + "/example_out.png", log = scratch() + "/example.txt";
  const std::string cmd = std::string(GPEN_EXAMPLE_C_PATH) + " " + kTiny + " " +
                          test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.aligned_in.png") + " " + out +
                          " --aligned --strength 100 --offline >" + log + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  INFO(ss.str());
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK_THAT(ss.str(), Catch::Contains("1 face(s) restored"));
  // Aligned crops come out at the model's size (48 px fixture -> the tiny model's 32 px).
  const int S = GpenModel::load(kTiny).config().size;
  const Image restored = load_image(out);
  CHECK(restored.width == S);
  CHECK(restored.height == S);
  CHECK(restored.pixels != resize_bilinear(face, S, S).pixels);

  const std::string bad = std::string(GPEN_EXAMPLE_C_PATH) + " /no/model.pth in.png out.png >" + log + " 2>&1";
  const int bad_status = std::system(bad.c_str());
  CHECK(WEXITSTATUS(bad_status) == 1);
}
