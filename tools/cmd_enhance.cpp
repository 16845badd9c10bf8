// `gpen enhance` and `gpen detect`.
// enhance: whole photos -- files, folders, a list -- through the batch pipeline (core/pipeline/batch.h:
// detect, align, restore, paste back, with the controls of docs/CONTROLS.md) or, with --aligned,
// face crops that are already aligned like FFHQ (straight through GPEN at the model size). This
// file only wires flags, signals and the progress display.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/error.h"
#include "core/face_detector.h"
#include "core/image.h"
#include "core/image_metadata.h"
#include "core/json_text.h"
#include "core/models/gpen.h"
#include "core/pipeline/batch.h"
#include "core/pipeline/face_restorer.h"
#include "core/pipeline/tasks.h"
#include "core/pipeline/upscale.h"
#include "core/parse_mask.h"
#include "core/thread_pool.h"
#include "tools/commands.h"
#include "weights/model_cache.h"

namespace fs = std::filesystem;

namespace gpen::cli {
namespace {

struct EngineOpts {
  std::string precision = "fp32", isa, device = "auto";
  int threads = 0;
  bool low_memory = false;
  ModelFetchOptions fetch;  // --models-dir, --offline: --model / --detector may be registry names
};

struct DetectOpts {
  std::string detector, device;  // device: empty = --device
  float threshold = 0.9f, min_face = 0;
  int max_faces = 0;
  bool only_center_face = false, single_scale = false;
};

struct EnhanceOpts {
  std::vector<std::string> inputs;
  std::string list_file, output, model, save_faces, report, suffix, format;
  bool aligned = false, recursive = false, overwrite = false, quiet = false, strip_metadata = false, eight_bit = false;
  int batch_size = 4, quality = 95, max_size = 0;
  std::string warp = "linear", mode = "natural";
  std::string task = "restore", mask_image;
  std::string mask = "rect", parsenet = "ParseNet-latest", sr_model;
  int upscale = 0, tile = 400;
  int workers = 0;  // per CPU stage of the batch pipeline; 0: default_stage_workers()
  int streams = 0;  // GPEN batches in flight; 0: BatchOptions' default
  Controls controls;
  EngineOpts engine;
  DetectOpts det;
};

void add_engine_options(CLI::App* cmd, EngineOpts& e) {
  cmd->add_option("--threads", e.threads, "CPU threads (0: all)");
  cmd->add_option("--device", e.device, "auto (CUDA when a usable GPU is present), cpu, cuda or cuda:N");
  cmd->add_option("--precision", e.precision, "CPU: fp32 or bf16; CUDA: fp32, tf32 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "tf32", "fp16"}));
  cmd->add_option("--isa", e.isa, "cap the instruction set: generic, avx2, avx512, avx512bf16");
  cmd->add_flag("--low-memory", e.low_memory,
                "CPU: every Winograd layer transforms its weights per run (least memory, a little slower)");
  add_model_fetch_options(cmd, e.fetch);
}

void add_detect_options(CLI::App* cmd, DetectOpts& d, bool required) {
  auto* o = cmd->add_option("--detector", d.detector,
                            "RetinaFace checkpoint or registered name (RetinaFace-MobileNet0.25, RetinaFace-R50)");
  if (required) o->required();
  cmd->add_option("--det-threshold", d.threshold, "face score threshold")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-face", d.min_face, "skip faces whose box is smaller than this (px)");
  cmd->add_option("--max-faces", d.max_faces, "restore at most this many faces (highest scores)");
  cmd->add_flag("--only-center-face", d.only_center_face, "only the face nearest the image centre");
  cmd->add_flag("--single-scale", d.single_scale, "one detection pass (the reference pipeline; misses huge faces)");
  cmd->add_option("--detector-device", d.device, "where RetinaFace runs (default: --device): auto, cpu, cuda or cuda:N");
}

CompileOptions compile_options(const EngineOpts& o) {
  CompileOptions c;
  c.threads = o.threads;
  c.lean_memory = o.low_memory;
  cpu::parse_precision(o.precision, &c.precision);  // tf32 / fp16 are CUDA's: the CPU keeps f32
  if (!o.isa.empty() && !cpu::parse_isa(o.isa, &c.max_isa)) fail("unknown --isa '", o.isa, "'");
  return c;
}

// RetinaFace on --detector-device (default --device). On CUDA it runs in fp32, so it finds the
// CPU's faces; there the full-resolution pass costs ~180 ms of a core per 1080p photo, the largest
// CPU cost of a photo once GPEN is on the GPU.
std::shared_ptr<FaceDetector> load_detector(const DetectOpts& d, const EngineOpts& e) {
  const SelectedDevice dev = select_device(parse_device(d.device.empty() ? e.device : d.device), GpuPrecision::FP32);
  auto model = std::make_shared<const RetinaFaceModel>(RetinaFaceModel::load(resolve_model(d.detector, e.fetch)));
  return std::make_shared<FaceDetector>(std::move(model), dev.backend, compile_options(e));
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

// GPEN on the selected device. The runner is the model's only owner, so on the CPU it frees the
// f32 conv weights once they are packed; on CUDA it keeps them for the out-of-memory fallback.
std::shared_ptr<GpenRunner> make_gpen(const std::string& name_or_path, const EngineOpts& e) {
  GpuPrecision gp = GpuPrecision::FP32;
  parse_gpu_precision(e.precision, &gp);
  const SelectedDevice dev = select_device(parse_device(e.device), gp);
  if (!dev.is_cuda && e.precision != "fp32" && e.precision != "bf16")
    fail("--precision ", e.precision, " needs a CUDA device (the CPU runs fp32 or bf16)");
  if (dev.is_cuda && e.precision == "bf16") fail("--precision bf16 is the CPU's; on CUDA use fp32, tf32 or fp16");
  auto model = std::make_shared<GpenModel>(GpenModel::load(resolve_model(name_or_path, e.fetch)));
  CompileOptions copt = compile_options(e);
  const std::string bf16_note = dev.is_cuda ? "" : cpu::precision_note(copt.precision, copt.max_isa);
  if (!bf16_note.empty()) std::fprintf(stderr, "gpen: note: %s\n", bf16_note.c_str());
  copt.quick_algorithms = true;  // on a GPU: first results without waiting for cudnnFind; timed on reuse
  auto runner = std::make_shared<GpenRunner>(std::move(model), dev.backend, copt);
  if (dev.is_cuda)  // out of GPU memory: smaller batches, then the CPU; never a crash
    runner->enable_oom_fallback([](const std::string& w) { std::fprintf(stderr, "gpen: warning: %s\n", w.c_str()); });
  return runner;
}

// Single-image outputs: format from the output's name, the input's metadata unless stripped.
EncodeOptions output_encoding(const EnhanceOpts& o) {
  EncodeOptions enc;
  enc.quality = o.quality;
  enc.keep_metadata = !o.strip_metadata;
  enc.keep_16bit = !o.eight_bit;
  return enc;
}

// An aligned crop goes straight through GPEN at the model size, with the controls.
int enhance_aligned(const EnhanceOpts& o) {
  if (o.inputs.size() != 1) fail("--aligned takes one input image");
  const Image crop = load_image(o.inputs[0]);
  auto gpen = make_gpen(o.model, o.engine);
  Image restored = restore_aligned_crop(*gpen, crop, o.controls);
  restored.meta = resampled_metadata(crop.meta, crop.width, restored.width);
  restored.samples16 = crop.samples16;  // a 16-bit crop of the model's size: 16-bit output
  save_image(o.output, restored, output_encoding(o));
  std::fprintf(stderr, "restored %s -> %s (%s)\n", o.inputs[0].c_str(), o.output.c_str(),
               gpen->model().config().describe().c_str());
  return 0;
}

// Colorization and inpainting take one aligned face: no detection, no paste-back, no face controls
// (core/pipeline/tasks.h). The model is a GPEN-Colorization / GPEN-Inpainting checkpoint.
int enhance_task(const EnhanceOpts& o) {
  if (o.inputs.size() != 1) fail("--task ", o.task, " takes one input image (an aligned face)");
  if (o.task == "inpaint" && o.mask_image.empty()) fail("--task inpaint needs --mask-image");
  if (o.task != "inpaint" && !o.mask_image.empty()) fail("--mask-image is only for --task inpaint");
  const Image img = load_image(o.inputs[0]);
  auto gpen = make_gpen(o.model, o.engine);
  Image out = o.task == "colorize" ? colorize(img, *gpen) : inpaint(img, load_image(o.mask_image), *gpen);
  out.meta = resampled_metadata(img.meta, img.width, out.width);
  save_image(o.output, out, output_encoding(o));
  std::fprintf(stderr, "%s %s -> %s (%s)\n", o.task == "colorize" ? "colorized" : "inpainted", o.inputs[0].c_str(),
               o.output.c_str(), gpen->model().config().describe().c_str());
  return 0;
}

// Set by SIGINT / SIGTERM: the batch starts no new photo, finishes those in flight, and exits 130.
std::atomic<bool> g_stop_requested{false};

extern "C" void on_stop_signal(int) {
  g_stop_requested.store(true);
  static const char msg[] = "\ngpen: stopping after the photos in progress (Ctrl-C again to abort)\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C kills at once
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A file-size limit (ulimit -f) would otherwise kill us mid-write; ignored, the write fails with
  // EFBIG and the batch stops cleanly like on a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
}

std::string clock_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// What the user sees while a batch runs: on a terminal one redrawn progress line (errors print
// above it); otherwise one plain line per photo; with --quiet only errors.
class ProgressView {
 public:
  ProgressView(bool quiet, bool single) : quiet_(quiet), single_(single), tty_(::isatty(STDERR_FILENO) == 1) {}

  void item(const ItemResult& r, const BatchProgress& p) {
    if (r.status == ItemStatus::Failed) {
      if (single_) return;  // the error is the command's one-line error
      clear_line();
      std::fprintf(stderr, "%s: error: %s\n", r.input.c_str(), r.error.c_str());
    } else if (!quiet_ && (!tty_ || single_)) {
      std::fprintf(stderr, "%s\n", describe(r).c_str());
    }
    if (!quiet_ && tty_ && !single_) draw(p);
  }

  void summary(const BatchSummary& s) {
    if (quiet_) return;
    clear_line();
    const BatchProgress& p = s.progress;
    if (single_ && !s.cancelled) return;
    std::fprintf(stderr, "%s: %zu done, %zu skipped (output exists), %zu failed, %zu not processed; %zu faces in %s",
                 s.cancelled ? "interrupted" : "finished", p.done, p.skipped, p.failed,
                 p.total - p.finished, p.faces, clock_text(p.elapsed_s).c_str());
    if (p.done > 0 && p.elapsed_s > 0)
      std::fprintf(stderr, " (%.2f photos/s, %.2f faces/s)", double(p.done) / p.elapsed_s, double(p.faces) / p.elapsed_s);
    std::fprintf(stderr, "\n");
  }

 private:
  static std::string describe(const ItemResult& r) {
    char buf[256];
    if (r.status == ItemStatus::Skipped)
      return r.input + ": " + r.output + " exists, skipped (--overwrite replaces it)";
    if (r.faces == 0) return r.input + ": no face found; output equals input -> " + r.output;
    std::snprintf(buf, sizeof buf, "  (detect %.0f ms, align %.0f ms, gpen %.0f ms, paste %.0f ms)", r.times.detect_ms,
                  r.times.align_ms, r.times.gpen_ms, r.times.paste_ms);
    const std::string colour = r.colour_profile.empty() ? "" : " [faces restored in sRGB, from " + r.colour_profile + "]";
    return r.input + ": " + std::to_string(r.faces) + " face(s) -> " + r.output + buf + colour;
  }

  void draw(const BatchProgress& p) {
    constexpr int kWidth = 24;
    const int filled = p.total ? int(kWidth * p.finished / p.total) : kWidth;
    // Restored photos only: skipped outputs and unreadable files take no time and would inflate it.
    const double rate = p.elapsed_s > 0 ? double(p.done) / p.elapsed_s : 0;
    const std::string eta = rate > 0 ? clock_text(double(p.total - p.finished) / rate) : "--:--";
    std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.2f photos/s  %.2f faces/s  ETA %s ", std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(kWidth - filled), '.').c_str(), p.finished, p.total, rate,
                 p.elapsed_s > 0 ? double(p.faces) / p.elapsed_s : 0.0, eta.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  void clear_line() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

  const bool quiet_, single_, tty_;
  bool drawn_ = false;
};

bool is_folder_output(const EnhanceOpts& o) {
  std::error_code ec;
  return o.inputs.size() != 1 || !o.list_file.empty() || fs::is_directory(o.inputs[0], ec) ||
         fs::is_directory(o.output, ec) || !has_image_extension(o.output) || o.output.back() == '/';
}

void write_report(const std::string& path, const BatchSummary& s) {
  const std::string text = json_text(batch_report(s), 2) + "\n";
  write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// Photos (files, folders, --list) through the overlapped batch pipeline (core/pipeline/batch.h).
int enhance_photos(const EnhanceOpts& o) {
  const bool to_folder = is_folder_output(o);
  OutputNaming naming;
  (to_folder ? naming.dir : naming.file) = o.output;
  naming.suffix = o.suffix;
  naming.format = o.format;
  const std::vector<BatchItem> items = plan_batch(BatchInputs{o.inputs, o.list_file, o.recursive}, naming);
  if (items.empty()) fail("no photos found in the inputs (folders are searched for .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp, .heic, .heif, .avif",
                          o.recursive ? ")" : "; --recursive descends into sub-folders)");
  const fs::path out_dir = to_folder ? fs::path(o.output) : fs::path(o.output).parent_path();
  ensure_writable_dir(out_dir.empty() ? "." : out_dir.string());  // fail before loading any model

  auto detector = load_detector(o.det, o.engine);
  // For alignment, paste-back and the photo filters; a stage that finds it busy runs serially.
  ThreadPool pool(o.engine.threads);
  FaceRestorer restorer(detector, make_gpen(o.model, o.engine), &pool);
  BatchOptions bo;
  bo.restore.detect = detect_options(o.det);
  bo.restore.controls = o.controls;
  bo.restore.batch_size = o.batch_size;
  bo.restore.keep_crops = !o.save_faces.empty();
  bo.restore.warp = o.warp == "cubic" ? WarpInterpolation::Cubic : WarpInterpolation::Linear;
  // ParseNet outline mask and RealESRNet background (GPEN's use_sr); names resolve like --model.
  std::unique_ptr<FaceMaskSource> parse_mask;
  if (o.mask == "parse") parse_mask = make_parse_mask(resolve_model(o.parsenet, o.engine.fetch), compile_options(o.engine));
  bo.restore.mask = parse_mask.get();
  std::unique_ptr<RrdbRunner> sr;
  if (o.upscale) {
    const std::string name = o.sr_model.empty() ? "realesrnet_x" + std::to_string(o.upscale) : o.sr_model;
    sr = std::make_unique<RrdbRunner>(load_sr_model(resolve_model(name, o.engine.fetch)), compile_options(o.engine));
    if (sr->scale() != o.upscale) fail("--sr-model is a x", sr->scale(), " model but --upscale is ", o.upscale);
    bo.restore.upscaler = sr.get();
    bo.restore.upscale.tile = o.tile;
  }
  bo.quality = o.quality;
  bo.keep_metadata = !o.strip_metadata;
  bo.keep_16bit = !o.eight_bit;
  bo.max_size = o.max_size;
  bo.overwrite = o.overwrite;
  bo.prepare_workers = bo.finish_workers = o.workers;
  bo.gpen_streams = o.streams;
  bo.save_faces_dir = o.save_faces;
  bo.cancel = &g_stop_requested;
  ProgressView view(o.quiet, !to_folder);
  bo.on_item = [&](const ItemResult& r, const BatchProgress& p) { view.item(r, p); };

  install_stop_handlers();
  const BatchSummary summary = run_batch(restorer, items, bo);
  view.summary(summary);
  if (!o.report.empty()) write_report(o.report, summary);
  if (!summary.fatal_error.empty()) fail(summary.fatal_error, " (stopped; finished outputs are complete)");
  if (!to_folder && summary.items[0].status == ItemStatus::Failed) fail(summary.items[0].error);
  return batch_exit_code(summary);
}

void parse_controls(EnhanceOpts& o) {
  if (!parse_mode(o.mode, &o.controls.mode)) fail("unknown --mode '", o.mode, "' (natural, strong or detail)");
  validate(o.controls);
}

void add_control_options(CLI::App* cmd, EnhanceOpts& o) {
  Controls& c = o.controls;
  cmd->add_option("--strength", c.strength, "0..100: 0 = input unchanged, 100 = GPEN's face (default 50)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--mode", o.mode, "natural, strong (more restoration below 100) or detail (restored detail boosted)")
      ->check(CLI::IsMember({"natural", "strong", "detail"}));
  cmd->add_option("--denoise", c.denoise, "0..100: edge-preserving denoise of the whole photo, before detection")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--sharpen", c.sharpen, "0..100: unsharp mask of the whole photo, after paste-back")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--contrast", c.contrast, "-100..100: whole photo, 0 = unchanged")->check(CLI::Range(-100.0, 100.0));
  cmd->add_option("--brightness", c.brightness, "-100..100: whole photo, 0 = unchanged")->check(CLI::Range(-100.0, 100.0));
  cmd->add_flag("--skin-protect,!--no-skin-protect", c.skin_protect,
                "keep the original's skin colour in restored faces (default on)");
  cmd->add_flag("--detail", c.detail, "add the original's fine texture back into restored faces");
}

void add_batch_options(CLI::App* cmd, EnhanceOpts& o) {
  cmd->add_option("--list", o.list_file, "file with one input path per line");
  cmd->add_flag("-r,--recursive", o.recursive, "descend into sub-folders of folder inputs (mirrored in the output)");
  cmd->add_option("--suffix", o.suffix, "appended to each output's file name stem (default none)");
  cmd->add_option("--format", o.format,
                  "output format png, jpg, webp, tif or bmp (default: the input's; jpg for HEIF/AVIF inputs)")
      ->check(CLI::IsMember({"png", "jpg", "webp", "tif", "bmp"}));
  cmd->add_option("--quality", o.quality, "JPEG / WebP quality 1..100")->check(CLI::Range(1, 100));
  cmd->add_flag("--strip-metadata", o.strip_metadata,
                "write no ICC profile, EXIF (camera, date, GPS), XMP or density (default: kept from the input); "
                "a photo whose profile is not sRGB is then converted to sRGB");
  cmd->add_flag("--8bit", o.eight_bit,
                "write 8 bits per sample even for 16-bit PNG/TIFF inputs (default: 16-bit inputs give "
                "16-bit PNG/TIFF outputs, untouched pixels bit for bit)");
  cmd->add_option("--max-size", o.max_size, "shrink photos whose long side exceeds this many pixels first (0: never)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--overwrite", o.overwrite, "replace existing outputs (default: skip them, so a rerun resumes)");
  cmd->add_flag("-q,--quiet", o.quiet, "no progress, only errors");
  cmd->add_option("--report", o.report, "write a JSON report: every input with status, faces, time, error");
}

}  // namespace

Runner register_enhance(CLI::App& app) {
  auto* cmd = app.add_subcommand("enhance", "Restore the faces in photos (or in aligned face crops)");
  auto o = std::make_shared<EnhanceOpts>();
  cmd->add_option("inputs", o->inputs, "input photos and folders");
  cmd->add_option("-o,--output", o->output, "output file (one photo) or folder")->required();
  cmd->add_option("--model", o->model,
                  "GPEN checkpoint (.pth, .safetensors or .onnx), registered name (gpen models list) or random:SIZE")
      ->required();
  cmd->add_flag("--aligned", o->aligned, "inputs are aligned face crops: no detection, no paste-back");
  cmd->add_option("--task", o->task,
                  "restore (default), colorize (GPEN-Colorization-1024) or inpaint (GPEN-Inpainting-1024, with "
                  "--mask-image); colorize and inpaint take one aligned face")
      ->check(CLI::IsMember({"restore", "colorize", "inpaint"}));
  cmd->add_option("--mask-image", o->mask_image, "inpaint: the region to fill, white (>= 128) on black, input's size");
  cmd->add_option("--batch-size", o->batch_size, "faces per GPEN forward")->check(CLI::PositiveNumber);
  cmd->add_option("--workers", o->workers,
                  "photos decoded+detected, and pasted+encoded, at once (threads per stage; 0: cores / 4, or cores / 2 with GPEN on a GPU)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--streams", o->streams,
                  "GPEN batches in flight at once, each on its own GPU stream (0: 2 on a GPU, 1 on the CPU)")
      ->check(CLI::Range(0, 8));
  cmd->add_option("--save-faces", o->save_faces, "write each aligned crop and its restored version here");
  cmd->add_option("--warp", o->warp, "alignment/paste-back interpolation: linear (as GPEN) or cubic")
      ->check(CLI::IsMember({"linear", "cubic"}));
  cmd->add_option("--mask", o->mask, "paste-back mask: rect (GPEN's feathered box) or parse (ParseNet face outline)")
      ->check(CLI::IsMember({"rect", "parse"}));
  cmd->add_option("--parsenet", o->parsenet, "ParseNet checkpoint or name for --mask parse (default ParseNet-latest)");
  cmd->add_option("--upscale", o->upscale, "upsample the whole photo 2x or 4x with RealESRNet first (GPEN's use_sr)")
      ->check(CLI::IsMember({2, 4}));
  cmd->add_option("--sr-model", o->sr_model, "RealESRNet checkpoint or name (default realesrnet_x2 / realesrnet_x4)");
  cmd->add_option("--tile", o->tile, "upscale tile side in input pixels, 0 = whole photo (use 200 for x4)")
      ->check(CLI::NonNegativeNumber);
  add_control_options(cmd, *o);
  add_batch_options(cmd, *o);
  add_detect_options(cmd, o->det, false);
  add_engine_options(cmd, o->engine);
  return [o]() {
    parse_controls(*o);
    if (o->inputs.empty() && o->list_file.empty()) fail("no inputs: name photos or folders, or --list FILE");
    if (o->task != "restore") return enhance_task(*o);
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
    std::vector<Detection> faces = load_detector(o->det, o->engine)->detect(photo, detect_options(o->det));
    if (o->json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const Detection& d : faces) {
        nlohmann::json lm = nlohmann::json::array();
        for (int i = 0; i < 5; ++i) lm.push_back({d.landmarks[2 * i], d.landmarks[2 * i + 1]});
        arr.push_back({{"box", {d.box[0], d.box[1], d.box[2], d.box[3]}}, {"score", d.score}, {"landmarks", lm}});
      }
      nlohmann::json j = {{"image", o->input}, {"width", photo.width}, {"height", photo.height}, {"faces", arr}};
      std::printf("%s\n", json_text(j, 2).c_str());
    } else {
      std::printf("%s: %zu face(s)\n", o->input.c_str(), faces.size());
      for (const Detection& d : faces)
        std::printf("  box [%.1f %.1f %.1f %.1f] score %.4f\n", d.box[0], d.box[1], d.box[2], d.box[3], d.score);
    }
    return 0;
  };
}

}  // namespace gpen::cli
