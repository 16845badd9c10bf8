// `gpen enhance` and `gpen detect`.
// enhance: whole photos (detect, align, restore, paste back) or, with --aligned, face crops that are
// already aligned like FFHQ (straight through GPEN at the model size).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/face_detector.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "core/paste_back.h"
#include "core/pipeline/face_restorer.h"
#include "tools/commands.h"

namespace fs = std::filesystem;

namespace gpen::cli {
namespace {

struct EngineOpts {
  std::string precision = "fp32", isa;
  int threads = 0;
};

struct DetectOpts {
  std::string detector;
  float threshold = 0.9f, min_face = 0;
  int max_faces = 0;
  bool only_center_face = false, single_scale = false;
};

struct EnhanceOpts {
  std::vector<std::string> inputs;
  std::string output, model, save_faces;
  bool aligned = false;
  double strength = 100;
  int batch_size = 4;
  std::string warp = "linear";
  EngineOpts engine;
  DetectOpts det;
};

void add_engine_options(CLI::App* cmd, EngineOpts& e) {
  cmd->add_option("--threads", e.threads, "CPU threads (0: all)");
  cmd->add_option("--precision", e.precision, "fp32 or bf16")->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--isa", e.isa, "cap the instruction set: generic, avx2, avx512, avx512bf16");
}

void add_detect_options(CLI::App* cmd, DetectOpts& d, bool required) {
  auto* o = cmd->add_option("--detector", d.detector, "RetinaFace checkpoint (mobilenet0.25 or resnet50)");
  if (required) o->required();
  cmd->add_option("--det-threshold", d.threshold, "face score threshold")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-face", d.min_face, "skip faces whose box is smaller than this (px)");
  cmd->add_option("--max-faces", d.max_faces, "restore at most this many faces (highest scores)");
  cmd->add_flag("--only-center-face", d.only_center_face, "only the face nearest the image centre");
  cmd->add_flag("--single-scale", d.single_scale, "one detection pass (the reference pipeline; misses huge faces)");
}

CompileOptions compile_options(const EngineOpts& o) {
  CompileOptions c;
  c.threads = o.threads;
  cpu::parse_precision(o.precision, &c.precision);
  if (!o.isa.empty() && !cpu::parse_isa(o.isa, &c.max_isa)) fail("unknown --isa '", o.isa, "'");
  return c;
}

DetectOptions detect_options(const DetectOpts& d) {
  DetectOptions o;
  o.score_threshold = d.threshold;
  o.min_face = d.min_face;
  o.max_faces = d.max_faces;
  o.only_center_face = d.only_center_face;
  o.multi_scale = !d.single_scale;
  return o;
}

std::shared_ptr<GpenRunner> make_gpen(const std::string& path, const EngineOpts& e) {
  auto model = std::make_shared<GpenModel>(GpenModel::load(path));
  return std::make_shared<GpenRunner>(model, std::shared_ptr<Backend>(make_cpu_backend()), compile_options(e));
}

int enhance_aligned(const EnhanceOpts& o) {
  if (o.inputs.size() != 1) fail("--aligned takes one input image");
  Image img = to_rgb(load_image(o.inputs[0]));
  auto gpen = make_gpen(o.model, o.engine);
  const int S = gpen->model().config().size;
  Image face = (img.width == S && img.height == S) ? img : resize_bilinear(img, S, S);
  Image out = tensor_to_face(gpen->forward(faces_to_tensor({&face})), 0);
  const double a = o.strength / 100.0;
  save_image(o.output, a >= 1 ? out : add_weighted(out, a, face));
  std::fprintf(stderr, "restored %s -> %s (%s)\n", o.inputs[0].c_str(), o.output.c_str(),
               gpen->model().config().describe().c_str());
  return 0;
}

void save_face_crops(const std::string& dir, const std::string& input, const RestoreResult& r) {
  fs::create_directories(dir);
  const std::string stem = fs::path(input).stem().string();
  for (size_t i = 0; i < r.faces.size(); ++i) {
    const std::string base = dir + "/" + stem + "_face" + std::to_string(i);
    save_image(base + "_aligned.png", r.faces[i].aligned);
    save_image(base + "_restored.png", r.faces[i].restored);
  }
}

// Photos are decoded a few at a time and restored together, so their faces share GPEN batches;
// one bad photo is reported and skipped (exit code 3 at the end), never stopping the others.
int enhance_photos(const EnhanceOpts& o) {
  const bool to_dir = o.inputs.size() > 1 || fs::is_directory(o.output);
  auto detector = std::make_shared<FaceDetector>(FaceDetector::load(o.det.detector, compile_options(o.engine)));
  auto gpen = make_gpen(o.model, o.engine);
  FaceRestorer restorer(detector, gpen);
  RestoreOptions ro;
  ro.detect = detect_options(o.det);
  ro.strength = o.strength / 100.0;
  ro.batch_size = o.batch_size;
  ro.keep_crops = !o.save_faces.empty();
  ro.warp = o.warp == "cubic" ? WarpInterpolation::Cubic : WarpInterpolation::Linear;
  const size_t photos_per_group = 4;
  int failures = 0;
  auto report_error = [&](const std::string& in, const Error& e) {
    if (o.inputs.size() == 1) throw e;
    std::fprintf(stderr, "%s: error: %s\n", in.c_str(), e.what());
    ++failures;
  };
  for (size_t g = 0; g < o.inputs.size(); g += photos_per_group) {
    std::vector<std::string> names;
    std::vector<Image> photos;
    for (size_t i = g; i < std::min(o.inputs.size(), g + photos_per_group); ++i) {
      try {
        photos.push_back(load_image(o.inputs[i]));
        names.push_back(o.inputs[i]);
      } catch (const Error& e) {
        report_error(o.inputs[i], e);
      }
    }
    std::vector<const Image*> ptrs;
    for (const Image& p : photos) ptrs.push_back(&p);
    std::vector<RestoreResult> results = ptrs.empty() ? std::vector<RestoreResult>{} : restorer.restore_many(ptrs, ro);
    for (size_t i = 0; i < results.size(); ++i) {
      const std::string& in = names[i];
      const RestoreResult& r = results[i];
      try {
        const std::string out = to_dir ? (fs::path(o.output) / fs::path(in).filename()).string() : o.output;
        save_image(out, r.image);
        if (!o.save_faces.empty()) save_face_crops(o.save_faces, in, r);
        if (r.faces.empty())
          std::fprintf(stderr, "%s: no face found; output equals input -> %s\n", in.c_str(), out.c_str());
        else
          std::fprintf(stderr, "%s: %zu face(s) -> %s  (detect %.0f ms, align %.0f ms, gpen %.0f ms, paste %.0f ms)\n",
                       in.c_str(), r.faces.size(), out.c_str(), r.times.detect_ms, r.times.align_ms,
                       r.times.gpen_ms, r.times.paste_ms);
      } catch (const Error& e) {
        report_error(in, e);
      }
    }
  }
  return failures ? 3 : 0;
}

}  // namespace

Runner register_enhance(CLI::App& app) {
  auto* cmd = app.add_subcommand("enhance", "Restore the faces in photos (or in aligned face crops)");
  auto o = std::make_shared<EnhanceOpts>();
  cmd->add_option("inputs", o->inputs, "input image(s)")->required();
  cmd->add_option("-o,--output", o->output, "output image (or folder for several inputs)")->required();
  cmd->add_option("--model", o->model, "GPEN checkpoint (.pth or .safetensors)")->required();
  cmd->add_flag("--aligned", o->aligned, "inputs are aligned face crops: no detection, no paste-back");
  cmd->add_option("--strength", o->strength, "0..100: blend of restored over original face")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--batch-size", o->batch_size, "faces per GPEN forward")->check(CLI::PositiveNumber);
  cmd->add_option("--save-faces", o->save_faces, "write each aligned crop and its restored version here");
  cmd->add_option("--warp", o->warp, "alignment/paste-back interpolation: linear (as GPEN) or cubic")
      ->check(CLI::IsMember({"linear", "cubic"}));
  add_detect_options(cmd, o->det, false);
  add_engine_options(cmd, o->engine);
  return [o]() {
    if (o->aligned) return enhance_aligned(*o);
    if (o->det.detector.empty()) fail("--detector is required for whole photos (or use --aligned for face crops)");
    return enhance_photos(*o);
  };
}

Runner register_detect(CLI::App& app) {
  auto* cmd = app.add_subcommand("detect", "Find faces: box, score and 5 landmarks per face");
  struct Opts {
    std::string input;
    bool json = false;
    DetectOpts det;
    EngineOpts engine;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("input", o->input, "photo")->required();
  cmd->add_flag("--json", o->json, "print JSON");
  add_detect_options(cmd, o->det, true);
  add_engine_options(cmd, o->engine);
  return [o]() {
    Image photo = load_image(o->input);
    FaceDetector det = FaceDetector::load(o->det.detector, compile_options(o->engine));
    std::vector<Detection> faces = det.detect(photo, detect_options(o->det));
    if (o->json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const Detection& d : faces) {
        nlohmann::json lm = nlohmann::json::array();
        for (int i = 0; i < 5; ++i) lm.push_back({d.landmarks[2 * i], d.landmarks[2 * i + 1]});
        arr.push_back({{"box", {d.box[0], d.box[1], d.box[2], d.box[3]}}, {"score", d.score}, {"landmarks", lm}});
      }
      nlohmann::json j = {{"image", o->input}, {"width", photo.width}, {"height", photo.height}, {"faces", arr}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s: %zu face(s)\n", o->input.c_str(), faces.size());
      for (const Detection& d : faces)
        std::printf("  box [%.1f %.1f %.1f %.1f] score %.4f\n", d.box[0], d.box[1], d.box[2], d.box[3], d.score);
    }
    return 0;
  };
}

}  // namespace gpen::cli
