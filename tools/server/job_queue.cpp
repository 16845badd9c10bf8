#include "tools/server/job_queue.h"

#include "core/image_metadata.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <algorithm>
#include <random>

namespace gpen::server {

enum class ItemState { Queued, Running, Done, Failed };
enum class JobState { Queued, Running, Finished };

namespace {

using Clock = std::chrono::steady_clock;

const char* item_state_name(ItemState s) {
  switch (s) {
    case ItemState::Running: return "running";
    case ItemState::Done: return "done";
    case ItemState::Failed: return "failed";
    default: return "queued";
  }
}

// 128 random bits as hex: unguessable, so one client cannot read another's results by id.
std::string new_job_id() {
  static std::mutex mu;
  static std::random_device rd;
  std::lock_guard<std::mutex> lock(mu);
  static const char hex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    const uint32_t r = rd();
    for (int k = 0; k < 8; ++k) id += hex[(r >> (4 * k)) & 15];
  }
  return id;
}

std::string with_extension(const std::string& name, ImageFormat f) {
  const std::string stem = std::filesystem::path(name).stem().string();
  return (stem.empty() ? "image" : stem) + "." + format_extension(f);
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

struct JobQueue::Item {
  Upload upload;  // bytes released once processed
  ItemState state = ItemState::Queued;
  std::string error;
  bool bad_input = false;  // the failure was the client's file, not the server
  ItemResult result;
  int width = 0, height = 0;
  double ms = 0;
};

struct JobQueue::Job {
  std::string id;
  EnhanceParams params;
  std::vector<Item> items;
  JobState state = JobState::Queued;
  Clock::time_point created = Clock::now(), finished;
};

JobQueue::JobQueue(const Engine& engine, OutputStore& outputs, Settings settings, QueueConfig cfg)
    : cfg_(cfg), outputs_(outputs), settings_(settings) {
  if (cfg_.workers < 1) fail("the job queue needs at least one worker");
  if (cfg_.max_queued < 0) fail("the queue bound must not be negative");
  // Workers are built here, not in their threads, so a model that cannot load fails at start-up.
  std::vector<std::unique_ptr<Engine::Worker>> workers;
  for (int i = 0; i < cfg_.workers; ++i) workers.push_back(engine.make_worker());
  for (auto& w : workers) threads_.emplace_back(&JobQueue::worker_loop, this, std::move(w));
}

JobQueue::~JobQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::optional<std::string> JobQueue::submit(std::vector<Upload> uploads, const EnhanceParams& params) {
  auto job = std::make_shared<Job>();
  job->params = params;
  job->items.resize(uploads.size());
  for (size_t i = 0; i < uploads.size(); ++i) job->items[i].upload = std::move(uploads[i]);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || int(queued_.size()) >= cfg_.max_queued + std::max(0, cfg_.workers - running_)) {
    ++jobs_refused_;
    return std::nullopt;
  }
  job->id = new_job_id();
  jobs_[job->id] = job;
  queued_.push_back(job);
  work_cv_.notify_one();
  return job->id;
}

int JobQueue::retry_after_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  const double waves = double(queued_.size() + 1) / cfg_.workers;
  return std::max(1, int(std::ceil(waves * avg_job_seconds_)));
}

void JobQueue::worker_loop(std::unique_ptr<Engine::Worker> worker) {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || (!paused_ && !queued_.empty()); });
      if (stopping_) return;
      job = queued_.front();
      queued_.pop_front();
      job->state = JobState::Running;
      ++running_;
    }
    const auto t0 = Clock::now();
    for (size_t i = 0; i < job->items.size(); ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) break;
      }
      run_item(*worker, *job, i);
    }
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    avg_job_seconds_ = 0.8 * avg_job_seconds_ + 0.2 * ms_since(t0) / 1000.0;
    finish_job(*job);
  }
}

// Decodes, restores, encodes and saves one image. Every failure becomes the image's error: one
// bad upload never stops the job, and nothing a client sends can bring the server down.
void JobQueue::run_item(Engine::Worker& worker, Job& job, size_t index) {
  Upload upload;
  Settings settings;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job.items[index].state = ItemState::Running;
    upload.name = job.items[index].upload.name;
    upload.bytes = std::move(job.items[index].upload.bytes);
    settings = settings_;
  }
  const auto t0 = Clock::now();
  ItemResult result;
  std::string error;
  bool bad_input = false;
  int width = 0, height = 0;
  StageTimes times;
  Device device = Device::Cpu;
  try {
    Image photo;
    try {
      photo = decode_image(upload.bytes, cfg_.limits);
    } catch (const Error&) {
      bad_input = true;
      throw;
    }
    width = photo.width;
    height = photo.height;
    upload.bytes = {};
    EnhanceOutput out = worker.enhance(photo, job.params, settings);
    out.image.meta = resampled_metadata(std::move(photo.meta), width, out.image.width);
    out.image.samples16 = std::move(photo.samples16);  // 16-bit uploads give 16-bit PNG/TIFF results
    device = out.device;
    times = out.times;
    result.faces = out.faces;
    result.colour_profile = out.colour_profile;
    result.format = job.params.format == ImageFormat::Unknown ? settings.output_format : job.params.format;
    EncodeOptions enc;
    enc.format = result.format;
    enc.quality = job.params.quality;
    enc.keep_metadata = !job.params.strip_metadata;
    enc.keep_16bit = !job.params.eight_bit;
    result.bytes = encode_image(out.image, enc);
    result.name = with_extension(upload.name, result.format);
    try {
      result.saved_as = outputs_.save(result.bytes, format_extension(result.format));
    } catch (const Error& e) {  // the client still gets its image; the operator gets the reason
      std::fprintf(stderr, "gpen serve: %s\n", e.what());
    }
  } catch (const std::bad_alloc&) {
    error = "out of memory";
  } catch (const std::exception& e) {
    error = e.what();
  }
  const double ms = ms_since(t0);
  std::lock_guard<std::mutex> lock(mu_);
  Item& item = job.items[index];
  item.width = width;
  item.height = height;
  item.ms = ms;
  if (error.empty()) {
    item.state = ItemState::Done;
    item.result = std::move(result);
    ++images_done_;
    last_image_ = {{"width", width}, {"height", height}, {"faces", item.result.faces}, {"total_ms", ms},
                   {"detect_ms", times.detect_ms}, {"align_ms", times.align_ms}, {"gpen_ms", times.gpen_ms},
                   {"paste_ms", times.paste_ms}, {"device", device_name(device)}};
  } else {
    item.state = ItemState::Failed;
    item.error = error;
    item.bad_input = bad_input;
    ++images_failed_;
  }
}

void JobQueue::finish_job(Job& job) {
  job.state = JobState::Finished;
  job.finished = Clock::now();
  for (Item& item : job.items)
    if (item.state == ItemState::Queued) {  // only when stopping
      item.state = ItemState::Failed;
      item.error = "the server is shutting down";
    }
  finished_order_.push_back(job.id);
  evict_finished_locked();
  done_cv_.notify_all();
}

void JobQueue::evict_finished_locked() {
  const auto now = Clock::now();
  while (!finished_order_.empty()) {
    auto it = jobs_.find(finished_order_.front());
    const bool expired = it == jobs_.end() || now - it->second->finished > cfg_.finished_ttl;
    if (!expired && finished_order_.size() <= cfg_.max_finished_kept) break;
    if (it != jobs_.end()) jobs_.erase(it);
    finished_order_.pop_front();
  }
}

WaitOutcome JobQueue::wait(const std::string& id, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return WaitOutcome::Unknown;
  std::shared_ptr<Job> job = it->second;  // stays valid even if evicted meanwhile
  const bool done = done_cv_.wait_for(lock, timeout, [&] { return job->state == JobState::Finished; });
  return done ? WaitOutcome::Finished : WaitOutcome::TimedOut;
}

nlohmann::json JobQueue::job_json_locked(const Job& job) const {
  nlohmann::json images = nlohmann::json::array();
  size_t done = 0, failed = 0;
  for (size_t i = 0; i < job.items.size(); ++i) {
    const Item& it = job.items[i];
    nlohmann::json j = {{"index", i}, {"name", it.upload.name},
                        {"status", item_state_name(it.state)}};
    if (it.state == ItemState::Done) {
      ++done;
      j.update({{"width", it.width}, {"height", it.height}, {"faces", it.result.faces}, {"ms", it.ms},
                {"saved_as", it.result.saved_as}, {"url", "/api/jobs/" + job.id + "/images/" + std::to_string(i)}});
      if (!it.result.colour_profile.empty()) j["colour_profile"] = it.result.colour_profile;
    } else if (it.state == ItemState::Failed) {
      ++failed;
      j["error"] = it.error;
    }
    images.push_back(j);
  }
  const char* state = job.state == JobState::Queued ? "queued" : job.state == JobState::Running ? "running" : "finished";
  nlohmann::json out = {{"id", job.id}, {"status", state}, {"total", job.items.size()}, {"done", done},
                        {"failed", failed}, {"progress", job.items.empty() ? 1.0 : double(done + failed) / job.items.size()},
                        {"images", images}, {"params", to_json(job.params)}};
  if (job.state == JobState::Queued) {
    size_t pos = 0;
    for (const auto& q : queued_) {
      if (q->id == job.id) break;
      ++pos;
    }
    out["queue_position"] = pos;
  }
  if (job.state == JobState::Finished && done > 0) out["zip_url"] = "/api/jobs/" + job.id + "/result.zip";
  return out;
}

std::optional<nlohmann::json> JobQueue::status(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return job_json_locked(*it->second);
}

std::optional<ItemResult> JobQueue::result(const std::string& id, size_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || index >= it->second->items.size()) return std::nullopt;
  const Item& item = it->second->items[index];
  if (item.state != ItemState::Done) return std::nullopt;
  return item.result;
}

std::optional<std::pair<std::string, bool>> JobQueue::first_error(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  for (const Item& item : it->second->items)
    if (item.state == ItemState::Failed) return std::make_pair(item.error, item.bad_input);
  return std::nullopt;
}

std::optional<std::vector<NamedBytes>> JobQueue::finished_outputs(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second->state != JobState::Finished) return std::nullopt;
  std::vector<NamedBytes> files;
  std::map<std::string, int> seen;  // two uploads called "a.png" become a.png and a_2.png
  for (const Item& item : it->second->items) {
    if (item.state != ItemState::Done) continue;
    std::string name = item.result.name;
    if (int n = ++seen[name]; n > 1) {
      const std::filesystem::path p(name);
      name = p.stem().string() + "_" + std::to_string(n) + p.extension().string();
    }
    files.push_back(NamedBytes{name, item.result.bytes});
  }
  return files;
}

void JobQueue::forget(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second->state != JobState::Finished) return;
  jobs_.erase(it);
  finished_order_.erase(std::remove(finished_order_.begin(), finished_order_.end(), id), finished_order_.end());
}

Settings JobQueue::settings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return settings_;
}

void JobQueue::set_settings(const Settings& s) {
  std::lock_guard<std::mutex> lock(mu_);
  settings_ = s;
}

nlohmann::json JobQueue::stats_json() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"workers", cfg_.workers},      {"max_queued", cfg_.max_queued}, {"queued", queued_.size()},
          {"running", running_},          {"jobs_kept", jobs_.size()},     {"images_done", images_done_},
          {"images_failed", images_failed_}, {"jobs_refused", jobs_refused_}, {"last_image", last_image_}};
}

void JobQueue::set_paused(bool paused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = paused;
  }
  work_cv_.notify_all();
}

}  // namespace gpen::server
