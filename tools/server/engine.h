// The restoration work behind `gpen serve`: the models, loaded once, and one Worker per job-queue
// thread. A Worker owns what is not thread-safe (the GPEN runner's compiled graphs, the detector's
// per-size cache); the GPEN weights are shared read-only by all workers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/backend.h"
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
};

struct EnhanceOutput {
  Image image;
  int faces = 0;
  StageTimes times;
};

class Engine {
 public:
  // Resolves the model names (weights/model_cache.h) and loads the GPEN weights; fails early, with
  // gpen::Error, on a bad name, path or file.
  explicit Engine(EngineConfig cfg);

  class Worker {
   public:
    explicit Worker(const Engine& engine);
    EnhanceOutput enhance(const Image& photo, const EnhanceParams& params, int batch_size);

   private:
    EnhanceOutput enhance_aligned(const Image& crop, const EnhanceParams& params);
    std::shared_ptr<GpenRunner> gpen_;
    std::unique_ptr<FaceRestorer> restorer_;
  };

  ModelFetchOptions fetch_options() const;
  std::unique_ptr<Worker> make_worker() const { return std::make_unique<Worker>(*this); }
  int face_size() const { return model_->config().size; }
  // Active models and the registered ones (weights/model_registry.h): in use, cached, or missing.
  nlohmann::json models_json() const;
  // The devices: the CPU (what runs the server's work) and what the CUDA module reports.
  static nlohmann::json devices_json();

 private:
  EngineConfig cfg_;
  std::string model_path_, detector_path_;  // resolved
  std::shared_ptr<const GpenModel> model_;
};

}  // namespace gpen::server
