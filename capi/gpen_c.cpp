// libgpen: the C API of include/gpen.h over the C++ engine. Every entry point catches every
// exception: nothing C++ crosses the boundary; failures become a status plus a thread-local message.
#include "gpen.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "core/error.h"
#include "core/face_detector.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "core/pipeline/adjustments.h"
#include "core/pipeline/face_restorer.h"
#include "weights/model_cache.h"

struct gpen_context {
  std::shared_ptr<gpen::GpenRunner> gpen;
  std::unique_ptr<gpen::FaceRestorer> restorer;  // null without a detector
  std::mutex mu;                                  // the engine runs one call at a time
};

namespace {

thread_local std::string g_last_error;

// Runs `f`, turning exceptions into a status and the thread's last error.
template <class F>
gpen_status guarded(gpen_status on_error, F&& f) {
  try {
    g_last_error.clear();
    return f();
  } catch (const gpen::Error& e) {
    g_last_error = e.what();
    return on_error;
  } catch (const std::bad_alloc&) {
    g_last_error = "out of memory";
    return GPEN_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error: ") + e.what();
    return GPEN_ERROR_INTERNAL;
  } catch (...) {
    g_last_error = "internal error: unknown exception";
    return GPEN_ERROR_INTERNAL;
  }
}

gpen_status invalid(const std::string& why) {
  g_last_error = why;
  return GPEN_ERROR_INVALID_ARGUMENT;
}

gpen::Image to_engine_image(const gpen_image& in) {
  gpen::Image img(in.width, in.height, in.channels);
  for (int y = 0; y < in.height; ++y) std::memcpy(img.row(y), in.data + size_t(y) * in.stride, img.row_bytes());
  return img;
}

// Copies into malloc'ed pixels that gpen_image_free() releases.
gpen_image to_c_image(const gpen::Image& img) {
  gpen_image out{img.width, img.height, img.channels, img.row_bytes(), nullptr};
  out.data = static_cast<uint8_t*>(std::malloc(img.pixels.size()));
  if (!out.data) throw std::bad_alloc();
  std::memcpy(out.data, img.pixels.data(), img.pixels.size());
  return out;
}

const char* check_image(const gpen_image* img) {
  if (!img || !img->data) return "image: NULL pixels";
  if (img->width <= 0 || img->height <= 0) return "image: width and height must be positive";
  if (img->channels != 1 && img->channels != 3 && img->channels != 4) return "image: channels must be 1, 3 or 4";
  if (img->stride < size_t(img->width) * size_t(img->channels)) return "image: stride smaller than a row";
  return nullptr;
}

gpen::CompileOptions compile_options(const gpen_options& o) {
  gpen::CompileOptions c;
  c.threads = o.threads;
  return c;
}

gpen::ModelFetchOptions fetch_options(const gpen_options& o) {
  gpen::ModelFetchOptions f;
  if (o.models_dir) f.models_dir = o.models_dir;
  f.offline = o.offline != 0;
  return f;
}

// Throws gpen::Error naming an out-of-range field.
gpen::Controls controls_of(const gpen_enhance_options& e) {
  gpen::Controls c;
  c.strength = e.strength;
  switch (e.mode) {
    case GPEN_MODE_NATURAL: c.mode = gpen::RestoreMode::Natural; break;
    case GPEN_MODE_STRONG: c.mode = gpen::RestoreMode::Strong; break;
    case GPEN_MODE_DETAIL: c.mode = gpen::RestoreMode::Detail; break;
    default: gpen::fail("mode must be GPEN_MODE_NATURAL, _STRONG or _DETAIL");
  }
  c.denoise = e.denoise;
  c.sharpen = e.sharpen;
  c.contrast = e.contrast;
  c.brightness = e.brightness;
  c.skin_protect = e.skin_protect != 0;
  c.detail = e.detail != 0;
  gpen::validate(c);
  return c;
}

int mode_of(gpen::RestoreMode m) {
  switch (m) {
    case gpen::RestoreMode::Strong: return GPEN_MODE_STRONG;
    case gpen::RestoreMode::Detail: return GPEN_MODE_DETAIL;
    default: return GPEN_MODE_NATURAL;
  }
}

// An aligned crop straight through GPEN at the model size, as `gpen enhance --aligned` does it.
gpen::Image enhance_aligned(gpen_context& ctx, const gpen::Image& input, const gpen::Controls& c) {
  return gpen::restore_aligned_crop(*ctx.gpen, input, c);
}

gpen::Image enhance_photo(gpen_context& ctx, const gpen::Image& input, const gpen_enhance_options& e,
                          const gpen::Controls& c, int* faces) {
  gpen::RestoreOptions ro;
  ro.controls = c;
  ro.detect.score_threshold = e.det_threshold;
  ro.detect.max_faces = e.max_faces;
  gpen::RestoreResult r = ctx.restorer->restore(input, ro);
  if (faces) *faces = int(r.faces.size());
  return std::move(r.image);
}

}  // namespace

extern "C" {

void gpen_options_init(gpen_options* o) {
  if (o) *o = gpen_options{nullptr, nullptr, nullptr, 0, 0};
}

void gpen_enhance_options_init(gpen_enhance_options* o) {
  if (!o) return;
  const gpen::Controls c;
  const gpen::DetectOptions detect;
  *o = gpen_enhance_options{0,          c.strength,        mode_of(c.mode), c.denoise,
                            c.sharpen,  c.contrast,        c.brightness,    c.skin_protect ? 1 : 0,
                            c.detail ? 1 : 0, detect.score_threshold, detect.max_faces};
}

gpen_status gpen_open(const gpen_options* options, gpen_context** ctx) {
  if (!options || !ctx) return invalid("gpen_open: NULL argument");
  *ctx = nullptr;
  if (!options->model || !*options->model) return invalid("gpen_open: options.model is required");
  if (options->threads < 0) return invalid("gpen_open: options.threads must be >= 0");
  return guarded(GPEN_ERROR_MODEL, [&] {
    const gpen::ModelFetchOptions fetch = fetch_options(*options);
    auto c = std::make_unique<gpen_context>();
    auto model = std::make_shared<gpen::GpenModel>(gpen::GpenModel::load(gpen::resolve_model(options->model, fetch)));
    c->gpen = std::make_shared<gpen::GpenRunner>(model, std::shared_ptr<gpen::Backend>(gpen::make_cpu_backend()),
                                                 compile_options(*options));
    if (options->detector && *options->detector) {
      auto det = std::make_shared<gpen::FaceDetector>(
          gpen::FaceDetector::load(gpen::resolve_model(options->detector, fetch), compile_options(*options)));
      c->restorer = std::make_unique<gpen::FaceRestorer>(det, c->gpen);
    }
    *ctx = c.release();
    return GPEN_OK;
  });
}

gpen_status gpen_enhance_image(gpen_context* ctx, const gpen_image* in, const gpen_enhance_options* options,
                               gpen_image* out, int* faces) {
  if (!ctx || !out) return invalid("gpen_enhance_image: NULL argument");
  if (const char* why = check_image(in)) return invalid(std::string("gpen_enhance_image: ") + why);
  gpen_enhance_options e;
  gpen_enhance_options_init(&e);
  if (options) e = *options;
  if (!e.aligned && !ctx->restorer)
    return invalid("gpen_enhance_image: whole photos need a detector (gpen_options.detector), or set aligned = 1");
  if (e.det_threshold < 0 || e.det_threshold > 1) return invalid("gpen_enhance_image: det_threshold must be 0..1");
  if (e.max_faces < 0) return invalid("gpen_enhance_image: max_faces must be >= 0");
  gpen::Controls c;
  if (gpen_status s = guarded(GPEN_ERROR_INVALID_ARGUMENT, [&] { c = controls_of(e); return GPEN_OK; }); s != GPEN_OK)
    return s;
  if (faces) *faces = e.aligned ? 1 : 0;
  *out = gpen_image{0, 0, 0, 0, nullptr};
  return guarded(GPEN_ERROR_FAILED, [&] {
    std::lock_guard<std::mutex> lock(ctx->mu);
    const gpen::Image input = to_engine_image(*in);
    *out = to_c_image(e.aligned ? enhance_aligned(*ctx, input, c) : enhance_photo(*ctx, input, e, c, faces));
    return GPEN_OK;
  });
}

void gpen_close(gpen_context* ctx) { delete ctx; }

gpen_status gpen_image_load(const char* path, gpen_image* out) {
  if (!path || !out) return invalid("gpen_image_load: NULL argument");
  *out = gpen_image{0, 0, 0, 0, nullptr};
  return guarded(GPEN_ERROR_IMAGE, [&] {
    *out = to_c_image(gpen::load_image(path));
    return GPEN_OK;
  });
}

gpen_status gpen_image_save(const char* path, const gpen_image* img) {
  if (!path) return invalid("gpen_image_save: NULL path");
  if (const char* why = check_image(img)) return invalid(std::string("gpen_image_save: ") + why);
  return guarded(GPEN_ERROR_IMAGE, [&] {
    gpen::save_image(path, to_engine_image(*img));
    return GPEN_OK;
  });
}

void gpen_image_free(gpen_image* img) {
  if (!img) return;
  std::free(img->data);
  *img = gpen_image{0, 0, 0, 0, nullptr};
}

const char* gpen_last_error(void) { return g_last_error.c_str(); }

const char* gpen_status_string(gpen_status s) {
  switch (s) {
    case GPEN_OK: return "ok";
    case GPEN_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case GPEN_ERROR_MODEL: return "model error";
    case GPEN_ERROR_IMAGE: return "image error";
    case GPEN_ERROR_FAILED: return "restoration failed";
    case GPEN_ERROR_OUT_OF_MEMORY: return "out of memory";
    case GPEN_ERROR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* gpen_version(void) { return "0.1.0"; }

}  // extern "C"
