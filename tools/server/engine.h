// The restoration work behind `gpen serve`: the models, loaded once, and one Worker per job-queue
// thread. A Worker owns what is not thread-safe (the detector's per-size graph cache and, on the
// CPU, its own GPEN runner); the weights are shared read-only by all workers.
//
// Devices. Each image runs where the server's `device` setting says (auto: CUDA when usable).
// On the CPU every worker has its own GPEN runner, as the CPU's threads are the limit. On the GPU
// all workers share one GPEN runner (one copy of the weights and activations on the device) that
// coalesces their faces into batches of up to the `batch_size` setting (core/forward_coalescer.h):
// under load, faces of different photos share a forward. Each worker runs its own RetinaFace on
// the GPU (fp32, its own stream), so detection of several photos overlaps. The GPU side is set up
// at start when --device resolves to CUDA, else at the first image that asks for it; out of GPU
// memory falls back to smaller batches, then to the CPU (core/device.h), never a failed image.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/backend.h"
#include "core/device.h"
#include "core/image.h"
#include "core/models/gpen.h"
#include "core/pipeline/face_restorer.h"
#include "tools/server/params.h"
#include "weights/model_cache.h"

namespace gpen::server {

struct EngineConfig {
  std::string model;     // GPEN checkpoint path, registered model name, or "random:SIZE[:SEED]"
  std::string detector;  // RetinaFace checkpoint path or registered name; empty: aligned crops only
  std::string models_dir;  // the model cache (weights/model_cache.h); empty: its default
  bool download = false;   // fetch a registered model missing from the cache (else: an error)
  CompileOptions compile;
  std::string device = "auto";  // --device: auto, cpu, cuda or cuda:N (the GPU used by setting "cuda")
  GpuPrecision gpu_precision = GpuPrecision::FP32;  // GPEN's convolutions on the GPU
  int gpu_streams = 2;  // GPEN batches in flight at once on the GPU (GpenRunner::share_between_threads)
  // Tests only: a stand-in for the GPU (e.g. the CPU backend) so that the shared, coalescing path
  // runs on machines without one. Empty: the CUDA module.
  std::function<SelectedDevice()> accelerator;
};

struct EnhanceOutput {
  Image image;
  int faces = 0;
  std::string colour_profile;  // faces went through GPEN in sRGB from this profile (RestoreResult)
  StageTimes times;
  Device device = Device::Cpu;  // where it ran (Cpu or Cuda)
};

class Engine {
 public:
  // Resolves the model names (weights/model_cache.h) and loads the GPEN weights; fails early, with
  // gpen::Error, on a bad name, path or file.
  explicit Engine(EngineConfig cfg);

  class Worker {
   public:
    explicit Worker(const Engine& engine) : engine_(engine) {}
    // On the device `settings.device` resolves to, with GPEN batches of settings.batch_size.
    EnhanceOutput enhance(const Image& photo, const EnhanceParams& params, const Settings& settings);

   private:
    // What runs one device's images for this worker, made at its first image there.
    struct Lane {
      std::shared_ptr<GpenRunner> gpen;
      std::unique_ptr<FaceRestorer> restorer;  // null without a detector
    };
    Lane& lane(Device d);
    const Engine& engine_;
    Lane cpu_, gpu_;
  };

  ModelFetchOptions fetch_options() const;
  std::unique_ptr<Worker> make_worker() const { return std::make_unique<Worker>(*this); }
  int face_size() const { return model_->config().size; }
  // Active models and the registered ones (weights/model_registry.h): in use, cached, or missing.
  nlohmann::json models_json() const;

  // Where a setting sends images: Cpu or Cuda. Auto is Cuda when the GPU is usable. Cuda when it
  // is not: gpen::Error "CUDA requested but unavailable: ...".
  Device resolve(Device setting) const;
  // Whether the setting "cuda" can be honoured, and if not why.
  bool gpu_usable(std::string* why = nullptr) const;
  // The devices: the CPU, and the GPU as the CUDA module reports it, with what the server runs
  // there (batches, faces, device memory) once in use.
  nlohmann::json devices_json() const;

 private:
  // Everything the workers share on the GPU: made once, at start or at the first image there.
  struct Gpu {
    SelectedDevice gpen_device, detector_device;
    std::shared_ptr<GpenRunner> gpen;
  };
  Gpu& gpu() const;
  std::shared_ptr<FaceDetector> make_detector(const std::shared_ptr<Backend>& backend) const;

  EngineConfig cfg_;
  DeviceRequest device_request_;
  std::string model_path_, detector_path_;  // resolved
  std::shared_ptr<const GpenModel> model_;
  std::shared_ptr<const RetinaFaceModel> detector_model_;  // null without --detector
  mutable std::mutex gpu_mu_;
  mutable std::unique_ptr<Gpu> gpu_;
  mutable std::string gpu_error_;  // why setting up the GPU failed under auto (it is then unusable)
};

}  // namespace gpen::server
