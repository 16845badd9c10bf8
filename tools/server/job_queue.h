// The bounded job queue of `gpen serve`. A job is one or more uploaded images with one set of
// parameters. A fixed number of worker threads (each with its own Engine::Worker) run jobs in
// arrival order; at most `max_queued` jobs wait beyond those running, and submit() refuses the
// rest so the HTTP layer can answer 503 + Retry-After instead of growing an unbounded backlog.
// Finished jobs keep their encoded results for a while (result downloads) and are then dropped,
// oldest first, so memory stays bounded however long the server runs.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/image.h"
#include "tools/server/engine.h"
#include "tools/server/output_store.h"
#include "tools/server/params.h"
#include "tools/server/zip_archive.h"

namespace gpen::server {

struct QueueConfig {
  int workers = 1;
  int max_queued = 4;              // jobs waiting for a worker, beyond those running
  size_t max_finished_kept = 32;   // finished jobs whose results stay downloadable
  std::chrono::seconds finished_ttl{3600};
  DecodeLimits limits;             // image-dimension limit, checked before decoding pixels
};

struct Upload {
  std::string name;            // display name (sanitized), used in the zip and the gallery
  std::vector<uint8_t> bytes;  // the encoded image as received
};

// The finished output of one image.
struct ItemResult {
  std::string name;   // display name with the output's extension
  ImageFormat format = ImageFormat::Png;
  std::vector<uint8_t> bytes;
  std::string saved_as;  // file name in the outputs directory ("" if saving failed)
  int faces = 0;
  std::string colour_profile;  // EnhanceOutput::colour_profile
};

// How a waited-for job ended, for /api/enhance's synchronous answer.
enum class WaitOutcome { Finished, TimedOut, Unknown };

class JobQueue {
 public:
  JobQueue(const Engine& engine, OutputStore& outputs, Settings settings, QueueConfig cfg);
  ~JobQueue();  // stops accepting, lets running images finish, joins the workers
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // A new job's id, or nullopt when the queue is full.
  std::optional<std::string> submit(std::vector<Upload> uploads, const EnhanceParams& params);
  // Seconds a refused client should wait before retrying: the queue's expected drain time.
  int retry_after_seconds() const;

  WaitOutcome wait(const std::string& id, std::chrono::milliseconds timeout) const;
  std::optional<nlohmann::json> status(const std::string& id) const;
  // The result of image `index` once done; nullopt for unknown job/index or not done (yet).
  std::optional<ItemResult> result(const std::string& id, size_t index) const;
  // The first failed image's error and whether it was the client's file (bad image) rather than ours.
  std::optional<std::pair<std::string, bool>> first_error(const std::string& id) const;
  // All done images of a finished job; nullopt for an unknown or unfinished job.
  std::optional<std::vector<NamedBytes>> finished_outputs(const std::string& id) const;

  const DecodeLimits& limits() const { return cfg_.limits; }
  int capacity() const { return cfg_.workers + cfg_.max_queued; }  // jobs admitted at once
  // Drops a finished job now (its result was delivered synchronously and is not needed again).
  void forget(const std::string& id);

  Settings settings() const;
  void set_settings(const Settings& s);
  nlohmann::json stats_json() const;  // queue occupancy, totals, the last image's timings

  // Holds jobs in the queue without starting them (tests use it to fill the queue deterministically).
  void set_paused(bool paused);

 private:
  struct Item;
  struct Job;
  void worker_loop(std::unique_ptr<Engine::Worker> worker);
  void run_item(Engine::Worker& worker, Job& job, size_t index);
  void finish_job(Job& job);
  void evict_finished_locked();
  nlohmann::json job_json_locked(const Job& job) const;

  const QueueConfig cfg_;
  OutputStore& outputs_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  mutable std::condition_variable done_cv_;
  std::deque<std::shared_ptr<Job>> queued_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::string> finished_order_;
  Settings settings_;
  bool paused_ = false, stopping_ = false;
  int running_ = 0;
  // Statistics for the settings tab and Retry-After.
  uint64_t images_done_ = 0, images_failed_ = 0, jobs_refused_ = 0;
  double avg_job_seconds_ = 1.0;
  nlohmann::json last_image_;
  std::vector<std::thread> threads_;
};

}  // namespace gpen::server
