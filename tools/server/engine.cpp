#include "tools/server/engine.h"

#include <cstdio>
#include <filesystem>

#include "core/colour_management.h"
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

Engine::Engine(EngineConfig cfg) : cfg_(std::move(cfg)), device_request_(parse_device(cfg_.device)) {
  model_path_ = resolve_model(cfg_.model, fetch_options());
  model_ = std::make_shared<GpenModel>(GpenModel::load(model_path_));
  if (!cfg_.detector.empty()) {
    detector_path_ = resolve_model(cfg_.detector, fetch_options());
    detector_model_ = std::make_shared<const RetinaFaceModel>(RetinaFaceModel::load(detector_path_));
  }
  // --device cuda that cannot be honoured fails here, at start. auto sets the GPU up when it is
  // usable, and when that fails anyway (a GPU too old for this build, ...) stays on the CPU.
  if (device_request_.kind == DeviceRequest::Kind::Cuda) {
    resolve(Device::Cuda);
    gpu();
  } else if (device_request_.kind == DeviceRequest::Kind::Auto && resolve(Device::Auto) == Device::Cuda) {
    try {
      gpu();
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(gpu_mu_);
      gpu_error_ = e.what();
      std::fprintf(stderr, "gpen serve: note: auto chose the CPU: %s\n", e.what());
    }
  }
}

ModelFetchOptions Engine::fetch_options() const {
  ModelFetchOptions opt;
  opt.models_dir = cfg_.models_dir;
  opt.offline = !cfg_.download;
  return opt;
}

bool Engine::gpu_usable(std::string* why) const {
  {
    std::lock_guard<std::mutex> lock(gpu_mu_);
    if (!gpu_error_.empty()) {
      if (why) *why = gpu_error_;
      return false;
    }
  }
  if (cfg_.accelerator) return true;
  const CudaModule& cuda = CudaModule::instance();
  if (cuda.usable() && device_request_.index < cuda.device_count()) return true;
  if (why)
    *why = !cuda.usable() ? cuda.why_unusable()
                          : "cuda:" + std::to_string(device_request_.index) + " does not exist (" +
                                std::to_string(cuda.device_count()) + " device(s))";
  return false;
}

Device Engine::resolve(Device setting) const {
  if (setting == Device::Cpu) return Device::Cpu;
  std::string why;
  if (gpu_usable(&why)) return Device::Cuda;
  if (setting == Device::Cuda) fail(cuda_unavailable_message(why));
  return Device::Cpu;
}

Engine::Gpu& Engine::gpu() const {
  std::lock_guard<std::mutex> lock(gpu_mu_);
  if (gpu_) return *gpu_;
  auto g = std::make_unique<Gpu>();
  DeviceRequest cuda = device_request_;
  cuda.kind = DeviceRequest::Kind::Cuda;
  g->gpen_device = cfg_.accelerator ? cfg_.accelerator() : select_device(cuda, cfg_.gpu_precision);
  g->detector_device = cfg_.accelerator ? cfg_.accelerator() : select_device(cuda, GpuPrecision::FP32);
  CompileOptions copt = cfg_.compile;
  copt.quick_algorithms = true;  // the first requests do not wait for cudnnFind; sizes in use get timed
  g->gpen = std::make_shared<GpenRunner>(model_, g->gpen_device.backend, copt);
  g->gpen->enable_oom_fallback([](const std::string& w) { std::fprintf(stderr, "gpen serve: warning: %s\n", w.c_str()); });
  g->gpen->share_between_threads(4, cfg_.gpu_streams);  // max batch: the batch_size setting, at every image
  std::fprintf(stderr, "gpen serve: GPU ready: %s\n", g->gpen_device.description.c_str());
  gpu_ = std::move(g);
  return *gpu_;
}

std::shared_ptr<FaceDetector> Engine::make_detector(const std::shared_ptr<Backend>& backend) const {
  if (!detector_model_) return nullptr;
  return std::make_shared<FaceDetector>(detector_model_, backend, cfg_.compile);
}

Engine::Worker::Lane& Engine::Worker::lane(Device d) {
  Lane& l = d == Device::Cuda ? gpu_ : cpu_;
  if (l.gpen) return l;
  std::shared_ptr<FaceDetector> detector;
  if (d == Device::Cuda) {
    Gpu& g = engine_.gpu();
    l.gpen = g.gpen;
    detector = engine_.make_detector(g.detector_device.backend);
  } else {
    auto cpu = std::shared_ptr<Backend>(make_cpu_backend());
    l.gpen = std::make_shared<GpenRunner>(engine_.model_, cpu, engine_.cfg_.compile);
    detector = engine_.make_detector(cpu);
  }
  if (detector) l.restorer = std::make_unique<FaceRestorer>(detector, l.gpen);
  return l;
}

EnhanceOutput Engine::Worker::enhance(const Image& photo, const EnhanceParams& params, const Settings& settings) {
  const Device where = engine_.resolve(settings.device);
  Lane& l = lane(where);
  if (where == Device::Cuda) l.gpen->set_max_batch(settings.batch_size);
  EnhanceOutput out;
  out.device = where;
  if (params.aligned) {  // the same path as `gpen enhance --aligned` (restore_aligned_crop)
    out.image = restore_aligned_crop(*l.gpen, photo, params.controls);
    out.faces = 1;
    const auto colour = params.controls.strength > 0 ? SrgbConversion::for_profile(photo.meta.icc) : nullptr;
    if (colour) out.colour_profile = colour->description();
    return out;
  }
  if (!l.restorer) fail("this server has no face detector (--detector): only aligned face crops can be enhanced");
  RestoreResult r = l.restorer->restore(photo, restore_options(params, settings.batch_size));
  out.image = std::move(r.image);
  out.faces = int(r.faces.size());
  out.colour_profile = std::move(r.colour_profile);
  out.times = r.times;
  return out;
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

nlohmann::json Engine::devices_json() const {
  nlohmann::json gpu = {{"name", "cuda"}};
  std::string why;
  gpu["available"] = gpu_usable(&why);
  std::lock_guard<std::mutex> lock(gpu_mu_);
  if (gpu_) {
    gpu["detail"] = gpu_->gpen_device.description;
    const ForwardCoalescer::Stats st = gpu_->gpen->sharing_stats();
    gpu["gpen_batches"] = st.batches;
    gpu["gpen_faces"] = st.samples;
    gpu["largest_batch"] = st.largest_batch;
    if (gpu_->gpen_device.is_cuda) {
      const CudaMemoryStats m = CudaModule::instance().memory_stats(gpu_->gpen_device.index);
      gpu["memory_mb"] = {{"held", m.allocated_bytes >> 20}, {"peak", m.peak_allocated_bytes >> 20},
                          {"device_used", m.device_used_bytes >> 20}};
    }
  } else if (gpu["available"]) {
    const CudaModule& cuda = CudaModule::instance();
    gpu["detail"] = cfg_.accelerator ? "stand-in accelerator (not set up yet)"
                                     : std::string(cuda.device_info(device_request_.index).name) + " (not set up yet)";
  } else {
    gpu["detail"] = why;
  }
  return nlohmann::json::array({{{"name", "cpu"}, {"available", true}, {"detail", cpu::isa_name(cpu::active_isa())}}, gpu});
}

}  // namespace gpen::server
