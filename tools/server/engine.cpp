#include "tools/server/engine.h"

#include <filesystem>

#include "core/face_tensor.h"
#include "core/image_ops.h"
#include "core/paste_back.h"
#include "core/pipeline/adjustments.h"
#include "core/device.h"
#include "kernels/cpu/isa.h"
#include "weights/model_registry.h"

namespace fs = std::filesystem;

namespace gpen::server {
namespace {

// The client sees a file's name, never where it lives on the server.
std::string display_name(const std::string& spec) {
  if (spec.rfind("random:", 0) == 0) return spec;
  return fs::path(spec).filename().string();
}

RestoreOptions restore_options(const EnhanceParams& p, int batch_size) {
  RestoreOptions ro;
  ro.detect = p.detect;
  ro.controls = p.controls;
  ro.batch_size = batch_size;
  ro.warp = p.warp;
  return ro;
}

}  // namespace

Engine::Engine(EngineConfig cfg) : cfg_(std::move(cfg)) {
  model_path_ = resolve_model(cfg_.model, fetch_options());
  model_ = std::make_shared<GpenModel>(GpenModel::from_state_dict(load_gpen_weights(model_path_)));
  if (!cfg_.detector.empty()) detector_path_ = resolve_model(cfg_.detector, fetch_options());
}

ModelFetchOptions Engine::fetch_options() const {
  ModelFetchOptions opt;
  opt.models_dir = cfg_.models_dir;
  opt.offline = !cfg_.download;
  return opt;
}

Engine::Worker::Worker(const Engine& engine) {
  gpen_ = std::make_shared<GpenRunner>(engine.model_, std::shared_ptr<Backend>(make_cpu_backend()),
                                       engine.cfg_.compile);
  if (!engine.detector_path_.empty()) {
    auto detector = std::make_shared<FaceDetector>(FaceDetector::load(engine.detector_path_, engine.cfg_.compile));
    restorer_ = std::make_unique<FaceRestorer>(detector, gpen_);
  }
}

EnhanceOutput Engine::Worker::enhance(const Image& photo, const EnhanceParams& params, int batch_size) {
  if (params.aligned) return enhance_aligned(photo, params);
  if (!restorer_) fail("this server has no face detector (--detector): only aligned face crops can be enhanced");
  RestoreResult r = restorer_->restore(photo, restore_options(params, batch_size));
  return EnhanceOutput{std::move(r.image), int(r.faces.size()), r.times};
}

// An aligned face crop: the same path as `gpen enhance --aligned` (restore_aligned_crop).
EnhanceOutput Engine::Worker::enhance_aligned(const Image& crop, const EnhanceParams& params) {
  return EnhanceOutput{restore_aligned_crop(*gpen_, crop, params.controls), 1, {}};
}

nlohmann::json Engine::models_json() const {
  const ModelFetchOptions opt = fetch_options();
  nlohmann::json registered = nlohmann::json::array();
  for (const ModelEntry& e : model_registry()) {
    if (e.kind != ModelKind::Gpen && e.kind != ModelKind::Detector) continue;
    std::error_code ec;
    const std::string cached = cached_model_path(e, opt), converted = converted_model_path(e, opt);
    const bool in_use = cached == model_path_ || converted == model_path_ || cached == detector_path_ ||
                        converted == detector_path_;
    const bool present = fs::is_regular_file(cached, ec) || fs::is_regular_file(converted, ec);
    registered.push_back({{"name", e.name}, {"file", e.file_name}, {"kind", model_kind_name(e.kind)},
                          {"description", e.description}, {"size", e.size}, {"present", present},
                          {"in_use", in_use}, {"loadable", model_format_supported(e)}});
  }
  return {{"gpen", {{"name", display_name(model_path_)}, {"description", model_->config().describe()},
                    {"size", model_->config().size}}},
          {"detector", detector_path_.empty() ? nlohmann::json(nullptr) : nlohmann::json(display_name(detector_path_))},
          {"auto_download", cfg_.download},
          {"catalogue", registered}};
}

nlohmann::json Engine::devices_json() {
  const CudaModule& cuda = CudaModule::instance();
  std::string cuda_detail = cuda.why_unusable();
  if (cuda.usable()) {
    const CudaDeviceInfo info = cuda.device_info(0);
    cuda_detail = std::string(info.name) + " (the server itself runs on the CPU for now)";
  }
  return nlohmann::json::array(
      {{{"name", "cpu"}, {"available", true}, {"detail", cpu::isa_name(cpu::active_isa())}},
       {{"name", "cuda"}, {"available", cuda.usable()}, {"detail", cuda_detail}}});
}

}  // namespace gpen::server
