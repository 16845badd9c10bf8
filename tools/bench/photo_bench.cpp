// The per-photo CPU stages around GPEN, on one 1920x1080 photo with one face of the size the
// batch benchmarks use (tools/bench/make_oneface_photo.py: a ~390x570 px face box, whose 512 px
// aligned crop covers ~1600x1080 photo pixels). With GPEN on a GPU these stages, not the model,
// bound the photos per second a machine's cores can feed it (docs/BENCHMARKS.md).
//   build/gpen_kernel_bench --benchmark_filter='photo/'
// The detector case reads RetinaFace-MobileNet0.25's real weights from $GPEN_SHARED/weights or
// ../shared/weights when there (random weights of the same layout otherwise: the same
// convolutions, but candidate counts unlike a real photo's).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "core/colour_management.h"
#include "core/face_align.h"
#include "core/face_detector.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/paste_back.h"
#include "core/models/retinaface.h"
#include "core/pipeline/adjustments.h"
#include "tests/icc_test_profiles.h"

namespace gpen {
namespace {

constexpr int kW = 1920, kH = 1080, kS = 512;

// Smooth skin-toned shading with a little noise: like a photo to the codecs and the skin mask.
Image synthetic_photo(uint64_t seed) {
  std::mt19937 rng{uint32_t(seed)};
  std::uniform_int_distribution<int> noise(-2, 2);
  Image img(kW, kH, 3);
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < kW; ++x) {
      uint8_t* p = img.row(y) + size_t(x) * 3;
      const float t = 0.5f + 0.5f * std::sin(x * 0.004f + y * 0.003f);
      const int base[3] = {int(120 + 100 * t), int(90 + 70 * t), int(70 + 60 * t)};
      for (int c = 0; c < 3; ++c) p[c] = uint8_t(std::clamp(base[c] + noise(rng), 0, 255));
    }
  return img;
}

// The crop -> photo map of a face centred at (930, 450): the 512 px crop spans ~1500 px, cut
// by the photo's top and bottom (1.7 M photo pixels, as for the one-face photo's face).
Affine face_inverse() {
  const double scale = 1500.0 / kS, angle = 0.05;
  const double a = scale * std::cos(angle), b = scale * std::sin(angle);
  return Affine{a, -b, 930 - (a * kS / 2 - b * kS / 2), b, a, 450 - (b * kS / 2 + a * kS / 2)};
}

struct OneFace {
  Image photo = synthetic_photo(1);
  PasteFace face;
  OneFace() {
    const Affine to_crop = invert_affine(face_inverse());
    face.aligned = warp_affine(photo, to_crop, kS, kS);
    face.restored = face.aligned;
    std::mt19937 rng(2);
    std::uniform_int_distribution<int> d(-20, 20);
    for (uint8_t& v : face.restored.pixels) v = uint8_t(std::clamp(int(v) + d(rng), 0, 255));
    face.inverse = face_inverse();
    face.box = {737, 163, 1124, 735};
  }
};

void photo_paste_one_face(benchmark::State& st) {
  const OneFace f;
  PasteOptions po;
  po.strength = 0.5;
  const std::vector<PasteFace> faces = {f.face};
  Image out = f.photo;
  for (auto _ : st) {
    st.PauseTiming();
    std::copy(f.photo.pixels.begin(), f.photo.pixels.end(), out.pixels.begin());  // no new pages
    st.ResumeTiming();
    paste_faces_into(out, faces, po);
    benchmark::DoNotOptimize(out.pixels.data());
  }
}

void photo_protect_skin(benchmark::State& st) {
  const OneFace f;
  Image pasted = f.photo;
  PasteOptions po;
  po.strength = 0.5;
  paste_faces_into(pasted, {f.face}, po);
  const Rect area = warp_affine_support(f.face.inverse, kS, kS, kW, kH);
  Image out = pasted;
  for (auto _ : st) {
    st.PauseTiming();
    std::copy(pasted.pixels.begin(), pasted.pixels.end(), out.pixels.begin());
    st.ResumeTiming();
    protect_skin_colour(out, f.photo, area);
    benchmark::DoNotOptimize(out.pixels.data());
  }
}

void photo_decode_jpeg(benchmark::State& st) {
  EncodeOptions eo;
  eo.format = ImageFormat::Jpeg;
  const std::vector<uint8_t> jpeg = encode_image(synthetic_photo(3), eo);
  for (auto _ : st) benchmark::DoNotOptimize(decode_image(jpeg).pixels.data());
}

void photo_encode_jpeg(benchmark::State& st) {
  const Image img = synthetic_photo(4);
  EncodeOptions eo;
  eo.format = ImageFormat::Jpeg;
  for (auto _ : st) benchmark::DoNotOptimize(encode_image(img, eo).data());
}

// The GPEN stage's host work per batch of 16 GPEN-512 faces: crops in, restored faces out.
void photo_face_tensors_16(benchmark::State& st) {
  std::vector<Image> crops;
  for (int i = 0; i < 16; ++i) crops.push_back(OneFace().face.restored);
  std::vector<const Image*> ptrs;
  for (const Image& c : crops) ptrs.push_back(&c);
  for (auto _ : st) {
    const Tensor t = faces_to_tensor(ptrs);
    for (int i = 0; i < 16; ++i) benchmark::DoNotOptimize(tensor_to_face(t, i).pixels.data());
  }
}

// RetinaFace-MobileNet0.25 on the 1920x1080 photo as `gpen enhance` runs it (multi-scale: the
// photo, then 1/3 and 1/9 of it), on st.range(0) threads.
void photo_detect(benchmark::State& st) {
  const char* env = std::getenv("GPEN_SHARED");
  const std::string weights = std::string(env ? env : "../shared") + "/weights/retinaface_mobilenet0.25.pth";
  const bool real = std::filesystem::exists(weights);
  auto model = std::make_shared<const RetinaFaceModel>(
      real ? RetinaFaceModel::load(weights)
           : RetinaFaceModel::from_state_dict(retinaface_random_state_dict(RetinaFaceBody::MobileNet025, 1)));
  CompileOptions opt;
  opt.threads = int(st.range(0));
  FaceDetector det(model, std::shared_ptr<Backend>(make_cpu_backend()), opt);
  const OneFace f;
  for (int i = 0; i < 4; ++i) det.detect(f.photo);  // compiled, memory settled
  for (auto _ : st) benchmark::DoNotOptimize(det.detect(f.photo).size());
  st.SetLabel(real ? "real weights" : "random weights");
}

#ifdef GPEN_HAVE_LCMS2
// One face crop of a Display P3 photo to sRGB and GPEN's output back (what each face of such a
// photo costs, core/colour_management.h): arg 1 = our lookup tables, 0 = lcms2's transforms.
void photo_colour_face_p3(benchmark::State& st) {
  const auto conversion = SrgbConversion::for_profile(test::display_p3_profile_bytes("Display P3"), st.range(0) != 0);
  if (!conversion) return st.SkipWithError("no conversion for Display P3");
  const OneFace f;
  Image crop = f.face.aligned;
  for (auto _ : st) {
    conversion->to_srgb(crop);
    conversion->from_srgb(crop);
    benchmark::DoNotOptimize(crop.pixels.data());
  }
  st.SetLabel(conversion->uses_lookup_tables() ? "lookup tables" : "lcms2");
}
BENCHMARK(photo_colour_face_p3)->Name("photo/colour_face_p3_to_srgb_and_back_512")->Arg(1)->Arg(0)->ArgName("tables")
    ->Unit(benchmark::kMillisecond);
#endif

BENCHMARK(photo_detect)->Name("photo/detect_retinaface_mnet_1080p")->Arg(1)->Arg(2)->ArgName("t")
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(photo_face_tensors_16)->Name("photo/face_tensors_in_out_16x512")->Unit(benchmark::kMillisecond);
BENCHMARK(photo_paste_one_face)->Name("photo/paste_one_face_1080p")->Unit(benchmark::kMillisecond);
BENCHMARK(photo_protect_skin)->Name("photo/protect_skin_one_face_1080p")->Unit(benchmark::kMillisecond);
BENCHMARK(photo_decode_jpeg)->Name("photo/decode_jpeg_1080p")->Unit(benchmark::kMillisecond);
BENCHMARK(photo_encode_jpeg)->Name("photo/encode_jpeg_q95_1080p")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gpen
