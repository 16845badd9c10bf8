#include "core/pipeline/batch.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/image_metadata.h"
#include "core/image_ops.h"
#include "core/thread_pool.h"

namespace fs = std::filesystem;

namespace gpen {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ------------------------------------------------------------------------------------------------
// Planning

struct Source {
  std::string path;
  fs::path sub_dir;  // below the folder it was found in (mirrored in the output)
};

bool is_hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

void collect_folder(const fs::path& root, bool recursive, std::vector<Source>& out) {
  std::vector<fs::path> found;
  std::error_code ec;
  auto consider = [&](const fs::directory_entry& e) {
    if (e.is_regular_file(ec) && has_image_extension(e.path().string()) && !is_hidden(e.path()))
      found.push_back(e.path());
  };
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (is_hidden(it->path()) && it->is_directory(ec)) it.disable_recursion_pending();
      else consider(*it);
    }
  } else {
    for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      consider(*it);
  }
  if (ec) fail("cannot list folder ", root.string(), ": ", ec.message());
  std::sort(found.begin(), found.end());
  for (const fs::path& p : found) out.push_back(Source{p.string(), p.parent_path().lexically_relative(root)});
}

void add_source(const std::string& path, bool recursive, std::vector<Source>& out) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) collect_folder(path, recursive, out);
  else out.push_back(Source{path, {}});
}

std::vector<std::string> read_list_file(const std::string& list) {
  std::ifstream f(list);
  if (!f) fail("cannot read the list file ", list, ": ", std::strerror(errno));
  std::vector<std::string> paths;
  std::string line;
  while (std::getline(f, line)) {
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    paths.push_back(line.substr(b, e - b + 1));
  }
  return paths;
}

// The input's own extension when gpen writes that format; HEIF/AVIF (read only) -> .jpg, as
// phones export them; anything else -> .png.
std::string output_extension(const std::string& input, const std::string& format) {
  if (!format.empty()) return "." + lower(format);
  const ImageFormat f = format_from_extension(input);
  if (f == ImageFormat::Heif) return ".jpg";
  return can_encode(f) ? lower(fs::path(input).extension().string()) : ".png";
}

// The same file whatever the spelling ("a/../b.png", "./b.png").
std::string canonical_key(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal().string() : p.string();
}

void check_outputs(std::vector<BatchItem>& items) {
  std::set<std::string> inputs;
  for (const BatchItem& it : items) inputs.insert(canonical_key(it.input));
  std::map<std::string, std::string> first_input_of;  // output -> the input that claimed it
  for (BatchItem& it : items) {
    if (!it.error.empty()) continue;
    const std::string key = canonical_key(it.output);
    if (inputs.count(key)) {
      it.error = "the output " + it.output + " would overwrite an input (use --suffix, --format or another -o)";
    } else if (auto [pos, fresh] = first_input_of.emplace(key, it.input); !fresh) {
      it.error = "same output name as " + pos->second + " (" + it.output + ")";
    }
  }
}

// ------------------------------------------------------------------------------------------------
// A bounded blocking queue between two stages.

template <class T>
class Channel {
 public:
  explicit Channel(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {}
  void push(T v) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return q_.size() < capacity_; });
    q_.push_back(std::move(v));
    not_empty_.notify_one();
  }
  // Empty once the channel is closed and drained.
  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> q_;
  bool closed_ = false;
};

// One photo on its way through the stages.
struct Job {
  size_t index = 0;
  PhotoInProgress photo;
  ImageMetadata meta;   // the input file's, for the output
  std::shared_ptr<const Samples16> samples16;  // a 16-bit input's samples, when not resized
  int input_width = 0;  // as decoded (before --max-size): the output's density scales from it
  double ms = 0;  // time spent on it so far
  double decode_ms = 0;
  size_t unrestored() const {
    return size_t(std::count_if(photo.faces.begin(), photo.faces.end(), [](const FaceInProgress& f) { return f.restored.empty(); }));
  }
};
using JobPtr = std::unique_ptr<Job>;

Image cap_long_side(Image img, int max_size) {
  const int long_side = std::max(img.width, img.height);
  if (max_size <= 0 || long_side <= max_size) return img;
  const double s = double(max_size) / long_side;
  return downscale_area(img, std::max(1, int(std::lround(img.width * s))), std::max(1, int(std::lround(img.height * s))));
}

void save_face_crops(const std::string& dir, const std::string& input, const RestoreResult& r) {
  const std::string stem = fs::path(input).stem().string();
  for (size_t i = 0; i < r.faces.size(); ++i) {
    const std::string base = (fs::path(dir) / (stem + "_face" + std::to_string(i))).string();
    write_file_atomic(base + "_aligned.png", encode_image(r.faces[i].aligned, EncodeOptions{ImageFormat::Png}));
    write_file_atomic(base + "_restored.png", encode_image(r.faces[i].restored, EncodeOptions{ImageFormat::Png}));
  }
}

class BatchRun {
 public:
  BatchRun(FaceRestorer& restorer, const std::vector<BatchItem>& items, const BatchOptions& options)
      : restorer_(restorer), items_(items), opt_(options), to_gpen_(size_t(options.queue_depth)),
        to_finish_(size_t(options.queue_depth)) {
    summary_.items.resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      summary_.items[i].input = items[i].input;
      summary_.items[i].output = items[i].output;
    }
    summary_.progress.total = items.size();
    write_ = opt_.write_file ? opt_.write_file : write_file_atomic;
  }

  BatchSummary run() {
    validate(opt_.restore.controls);
    start_ = Clock::now();
    const std::vector<FaceRestorer*> preparers = make_preparers();
    preparers_left_ = preparers.size();
    std::vector<std::thread> workers;
    for (FaceRestorer* r : preparers)
      workers.emplace_back([this, r] {
        guarded([&] { prepare_stage(*r); }, [] {});
        if (--preparers_left_ == 0) to_gpen_.close();  // the last one out tells GPEN no more come
      });
    for (int k = 0; k < stage_workers(opt_.finish_workers); ++k)
      workers.emplace_back([this] { guarded([this] { finish_stage(); }, [this] { drain(to_finish_); }); });
    const std::vector<FaceRestorer*> gpen_runners = make_gpen_runners();
    gpen_left_ = gpen_runners.size();
    for (size_t k = 1; k < gpen_runners.size(); ++k)
      workers.emplace_back([this, r = gpen_runners[k]] { gpen_thread(*r); });
    gpen_thread(*gpen_runners[0]);
    for (std::thread& w : workers) w.join();
    for (ItemResult& r : summary_.items)
      if (r.status == ItemStatus::Pending) r.status = ItemStatus::NotProcessed;
    summary_.cancelled = cancel_requested();
    summary_.progress.elapsed_s = ms_since(start_) / 1000.0;
    return std::move(summary_);
  }

 private:
  int stage_workers(int requested) const {
    return requested > 0 ? requested : default_stage_workers(restorer_.gpen_on_cpu());
  }

  // GPEN stage threads: the caller's restorer, then copies on twins of its runner.
  std::vector<FaceRestorer*> make_gpen_runners() {
    const int n = opt_.gpen_streams > 0 ? opt_.gpen_streams : restorer_.gpen_on_cpu() ? 1 : 2;
    std::vector<FaceRestorer*> out = {&restorer_};
    for (int k = 1; k < n; ++k) {
      own_gpen_runners_.push_back(std::make_unique<FaceRestorer>(restorer_.with_own_gpen()));
      out.push_back(own_gpen_runners_.back().get());
    }
    return out;
  }

  // One GPEN stage thread. The last one out tells stage 3 no more photos come; a failing one only
  // unblocks stage 1 (the others still push into stage 3, which must keep consuming).
  void gpen_thread(FaceRestorer& r) {
    guarded([&] { gpen_stage(r); }, [this] { drain(to_gpen_); });
    if (--gpen_left_ == 0) to_finish_.close();
  }

  // One restorer per stage-1 worker: the caller's for a single worker, else copies with their own
  // detector (FaceDetector caches graphs, so one per thread) splitting its threads between them.
  std::vector<FaceRestorer*> make_preparers() {
    const int n = opt_.restore.upscaler ? 1 : stage_workers(opt_.prepare_workers);
    if (n == 1) return {&restorer_};
    const int threads_each = std::max(1, restorer_.detector_threads() / n);
    std::vector<FaceRestorer*> out;
    for (int k = 0; k < n; ++k) {
      own_preparers_.push_back(std::make_unique<FaceRestorer>(restorer_.with_own_detector(threads_each)));
      out.push_back(own_preparers_.back().get());
    }
    return out;
  }

  bool cancel_requested() const { return opt_.cancel && opt_.cancel->load(); }
  bool stopping() const { return fatal_.load() || cancel_requested(); }

  // A stage that throws (a bug, or out of memory outside any photo) stops the batch; `unblock`
  // closes its output and empties its input so that no other stage waits on it forever.
  template <class Stage, class Unblock>
  void guarded(Stage&& stage, Unblock&& unblock) {
    try {
      stage();
    } catch (const std::exception& e) {
      stop_with(std::string("internal error: ") + e.what());
      unblock();
    }
  }

  void stop_with(const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (summary_.fatal_error.empty()) summary_.fatal_error = message;
    fatal_ = true;
  }

  void record(size_t index, ItemResult r) {
    std::lock_guard<std::mutex> lock(mutex_);
    BatchProgress& p = summary_.progress;
    ++p.finished;
    p.done += r.status == ItemStatus::Done;
    p.skipped += r.status == ItemStatus::Skipped;
    p.failed += r.status == ItemStatus::Failed;
    if (r.status == ItemStatus::Done) p.faces += size_t(r.faces);
    p.elapsed_s = ms_since(start_) / 1000.0;
    r.finished_s = p.elapsed_s;
    summary_.items[index] = std::move(r);
    if (opt_.on_item) opt_.on_item(summary_.items[index], p);
  }

  static void drain(Channel<JobPtr>& c) {
    while (c.pop()) {}
  }

  ItemResult result_for(size_t index, ItemStatus status, const std::string& error = {}) const {
    ItemResult r;
    r.input = items_[index].input;
    r.output = items_[index].output;
    r.status = status;
    r.error = error;
    return r;
  }

  // Stage 1, on each of its workers: decode, cap the size, denoise, detect, align. The workers
  // take the inputs in order from a shared counter.
  void prepare_stage(FaceRestorer& restorer) {
    while (!stopping()) {
      const size_t i = next_input_++;
      if (i >= items_.size()) break;
      const BatchItem& item = items_[i];
      std::error_code ec;
      if (!item.error.empty()) {
        record(i, result_for(i, ItemStatus::Failed, item.error));
      } else if (!opt_.overwrite && fs::exists(item.output, ec)) {
        record(i, result_for(i, ItemStatus::Skipped));
      } else if (JobPtr job = prepare(restorer, i)) {
        to_gpen_.push(std::move(job));
      }
    }
  }

  JobPtr prepare(FaceRestorer& restorer, size_t i) {
    try {
      const auto t0 = Clock::now();
      Image decoded = load_image(items_[i].input);
      auto job = std::make_unique<Job>();
      job->meta = std::move(decoded.meta);
      job->input_width = decoded.width;
      const int decoded_height = decoded.height;
      std::shared_ptr<const Samples16> samples16 = std::move(decoded.samples16);
      Image photo = cap_long_side(std::move(decoded), opt_.max_size);
      if (photo.width == job->input_width && photo.height == decoded_height) job->samples16 = std::move(samples16);
      photo.meta.icc = job->meta.icc;  // faces go through GPEN in sRGB when it is another profile
      job->index = i;
      job->decode_ms = ms_since(t0);
      job->photo = restorer.detect_faces(std::move(photo), opt_.restore);
      job->ms = ms_since(t0);
      return job;
    } catch (const std::bad_alloc&) {
      record(i, result_for(i, ItemStatus::Failed, "out of memory"));
    } catch (const std::exception& e) {
      record(i, result_for(i, ItemStatus::Failed, e.what()));
    }
    return nullptr;
  }

  // Stage 2, the calling thread: GPEN batches filled with faces of the photos in arrival order. A
  // partial batch waits for the next photo's faces, and runs when no more photos are coming.
  void gpen_stage(FaceRestorer& restorer) {
    const size_t batch = size_t(std::max(1, opt_.restore.batch_size));
    std::deque<JobPtr> pending;
    bool upstream_done = false;
    while (true) {
      if (fatal_) break;  // the outputs cannot be written: no point restoring more
      forward_complete(pending);
      size_t unrestored = 0;
      for (const JobPtr& j : pending) unrestored += j->unrestored();
      if (unrestored >= batch || (upstream_done && unrestored > 0)) {
        run_one_batch(restorer, pending, batch);
      } else if (upstream_done) {
        break;
      } else if (std::optional<JobPtr> next = to_gpen_.pop()) {
        pending.push_back(std::move(*next));
      } else {
        upstream_done = true;
      }
    }
    drain(to_gpen_);  // after a stop: unblocks the stage-1 workers, which then see it and end
  }

  void forward_complete(std::deque<JobPtr>& pending) {
    const bool restore = restores_faces(opt_.restore);
    for (auto it = pending.begin(); it != pending.end();) {
      if (!restore || (*it)->unrestored() == 0) {
        to_finish_.push(std::move(*it));
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  }

  void run_one_batch(FaceRestorer& restorer, std::deque<JobPtr>& pending, size_t batch) {
    std::vector<FaceInProgress*> faces;
    for (JobPtr& j : pending)
      for (FaceInProgress& f : j->photo.faces)
        if (f.restored.empty() && faces.size() < batch) faces.push_back(&f);
    try {
      restorer.run_gpen(faces, opt_.restore);
    } catch (const std::exception& e) {  // every photo with a face in this batch fails
      for (auto it = pending.begin(); it != pending.end();) {
        const bool involved = std::any_of((*it)->photo.faces.begin(), (*it)->photo.faces.end(), [&](FaceInProgress& f) {
          return std::find(faces.begin(), faces.end(), &f) != faces.end();
        });
        if (involved) {
          record((*it)->index, result_for((*it)->index, ItemStatus::Failed, e.what()));
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  // Stage 3, on each of its workers: face controls, paste-back, finishing filters, encode, write.
  void finish_stage() {
    while (std::optional<JobPtr> next = to_finish_.pop()) {
      if (fatal_) continue;  // left as "not processed"
      Job& job = **next;
      try {
        record(job.index, finish(job));
      } catch (const OutputError& e) {
        stop_with(e.what());  // first, so that the other workers start no further photo
        record(job.index, result_for(job.index, ItemStatus::Failed, e.what()));
      } catch (const std::bad_alloc&) {
        record(job.index, result_for(job.index, ItemStatus::Failed, "out of memory"));
      } catch (const std::exception& e) {
        record(job.index, result_for(job.index, ItemStatus::Failed, e.what()));
      }
    }
  }

  ItemResult finish(Job& job) {
    const BatchItem& item = items_[job.index];
    const auto t0 = Clock::now();
    RestoreResult r = restorer_.finish(std::move(job.photo), opt_.restore);
    r.image.meta = resampled_metadata(std::move(job.meta), job.input_width, r.image.width);
    r.image.samples16 = std::move(job.samples16);  // used when the output has the input's size
    EncodeOptions enc;
    enc.format = format_from_extension(item.output);
    if (!can_encode(enc.format)) enc.format = ImageFormat::Png;
    enc.quality = opt_.quality;
    enc.keep_metadata = opt_.keep_metadata;
    enc.keep_16bit = opt_.keep_16bit;
    const auto t_encode = Clock::now();
    const std::vector<uint8_t> bytes = encode_image(r.image, enc);  // an Error here is this photo's alone
    const double encode_ms = ms_since(t_encode);
    const auto t_write = Clock::now();
    write_(item.output, bytes);
    if (!opt_.save_faces_dir.empty()) save_face_crops(opt_.save_faces_dir, item.input, r);
    ItemResult out = result_for(job.index, ItemStatus::Done);
    out.faces = int(r.faces.size());
    out.colour_profile = r.colour_profile;
    out.times = r.times;
    out.decode_ms = job.decode_ms;
    out.encode_ms = encode_ms;
    out.write_ms = ms_since(t_write);
    out.width = r.image.width;
    out.height = r.image.height;
    out.ms = job.ms + ms_since(t0);
    return out;
  }

  FaceRestorer& restorer_;
  const std::vector<BatchItem>& items_;
  const BatchOptions& opt_;
  std::function<void(const std::string&, const std::vector<uint8_t>&)> write_;
  Channel<JobPtr> to_gpen_, to_finish_;
  std::vector<std::unique_ptr<FaceRestorer>> own_preparers_;  // stage-1 workers' detector copies
  std::atomic<size_t> next_input_{0};                         // the next input a stage-1 worker takes
  std::atomic<size_t> preparers_left_{0};
  std::vector<std::unique_ptr<FaceRestorer>> own_gpen_runners_;  // GPEN threads beyond the first
  std::atomic<size_t> gpen_left_{0};
  std::mutex mutex_;
  std::atomic<bool> fatal_{false};
  BatchSummary summary_;
  Clock::time_point start_;
};

}  // namespace

int default_stage_workers(bool gpen_on_cpu) {
  return std::max(1, ThreadPool::hardware_threads() / (gpen_on_cpu ? 4 : 2));
}

bool has_image_extension(const std::string& path) {
  const std::string ext = lower(fs::path(path).extension().string());
  return format_from_extension(path) != ImageFormat::Unknown;
}

std::vector<BatchItem> plan_batch(const BatchInputs& inputs, const OutputNaming& naming) {
  if (naming.dir.empty() == naming.file.empty()) fail("plan_batch: name exactly one of an output folder or file");
  if (!naming.format.empty() && !can_encode(format_from_extension("x." + naming.format)))
    fail("unknown output format '", naming.format, "' (png, jpg, webp, tif or bmp)");
  std::vector<Source> sources;
  for (const std::string& p : inputs.paths) add_source(p, inputs.recursive, sources);
  if (!inputs.list_file.empty())
    for (const std::string& p : read_list_file(inputs.list_file)) add_source(p, inputs.recursive, sources);

  std::vector<BatchItem> items;
  if (!naming.file.empty() && format_from_extension(naming.file) == ImageFormat::Heif)
    fail("cannot write ", naming.file, ": gpen reads HEIF/AVIF but does not write it (name a .jpg, .png, .webp, .tif or .bmp)");
  if (!naming.file.empty()) {
    std::error_code ec;
    if (sources.size() != 1 || fs::is_directory(inputs.paths.empty() ? "" : inputs.paths[0], ec))
      fail("an output file (-o ", naming.file, ") takes exactly one input photo; name a folder for several");
    items.push_back(BatchItem{sources[0].path, naming.file, {}});
  } else {
    for (const Source& s : sources) {
      const fs::path in(s.path);
      const std::string name = in.stem().string() + naming.suffix + output_extension(s.path, naming.format);
      items.push_back(BatchItem{s.path, (fs::path(naming.dir) / s.sub_dir / name).lexically_normal().string(), {}});
    }
  }
  for (BatchItem& it : items) {
    std::error_code ec;
    if (!fs::exists(it.input, ec)) it.error = "cannot read '" + it.input + "': no such file";
    else if (fs::is_directory(it.input, ec)) it.error = "cannot read '" + it.input + "': it is a folder";
  }
  check_outputs(items);
  return items;
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  const fs::path target(path);
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw OutputError("cannot create folder " + dir.string() + ": " + ec.message());
  static std::atomic<unsigned> counter{0};
  // Hidden, so folder discovery never takes a leftover (after a kill -9) for an input.
  const std::string tmp = (dir / ("." + target.filename().string() + ".gpen-tmp-" + std::to_string(::getpid()) + "-" +
                                  std::to_string(counter++))).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw OutputError("cannot write " + path + ": " + std::strerror(errno));
  auto give_up = [&](int err, bool close_fd) {
    if (close_fd) ::close(fd);
    ::unlink(tmp.c_str());
    throw OutputError("cannot write " + path + ": " + std::strerror(err));
  };
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) give_up(n < 0 ? errno : ENOSPC, true);
    done += size_t(n);
  }
  if (::fsync(fd) != 0) give_up(errno, true);  // the data is on disk before the name points at it
  if (::close(fd) != 0) give_up(errno, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0) give_up(errno, false);
}

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw OutputError("cannot create output folder " + dir + ": " + ec.message());
  const std::string probe = (fs::path(dir) / (".gpen-write-test-" + std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw OutputError("cannot write to output folder " + dir + ": " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

const char* item_status_name(ItemStatus s) {
  switch (s) {
    case ItemStatus::Pending: return "pending";
    case ItemStatus::Done: return "done";
    case ItemStatus::Skipped: return "skipped";
    case ItemStatus::Failed: return "failed";
    case ItemStatus::NotProcessed: return "not processed";
  }
  return "pending";
}

int batch_exit_code(const BatchSummary& s) {
  if (!s.fatal_error.empty()) return 1;
  if (s.cancelled) return 130;
  return s.progress.failed ? 3 : 0;
}

namespace {
// Where a finished photo's time went, for finding the pipeline's bottleneck.
nlohmann::ordered_json stage_times_json(const ItemResult& r) {
  auto ms = [](double v) { return std::round(v * 10) / 10; };
  nlohmann::ordered_json j = {{"decode", ms(r.decode_ms)}};
  if (r.times.upscale_ms > 0) j["upscale"] = ms(r.times.upscale_ms);
  j["detect"] = ms(r.times.detect_ms);
  j["align"] = ms(r.times.align_ms);
  j["gpen"] = ms(r.times.gpen_ms);
  j["paste"] = ms(r.times.paste_ms);
  j["encode"] = ms(r.encode_ms);
  j["write"] = ms(r.write_ms);
  return j;
}
}  // namespace

namespace {
// The rate once the first photo is out: start-up (model load, compile, a GPU's algorithm search)
// is in the first result's time. The photos of the first GPEN batch finish just after it, in a
// burst that rate counts without its time (up to batch / photos too high), so the steady rate
// is also given from the moment a quarter of the photos are done to the last (8 photos or more).
void add_steady_rate(const BatchSummary& s, nlohmann::ordered_json& summary) {
  std::vector<double> finished;
  for (const ItemResult& r : s.items)
    if (r.status == ItemStatus::Done) finished.push_back(r.finished_s);
  if (finished.empty()) return;
  std::sort(finished.begin(), finished.end());
  const size_t done = finished.size();
  const double first = finished.front(), last = finished.back();
  auto rate = [](size_t photos, double seconds) { return std::round(double(photos) / seconds * 100) / 100; };
  summary["first_result_s"] = std::round(first * 1000) / 1000;
  if (done >= 2 && last > first) summary["photos_per_s_after_first"] = rate(done - 1, last - first);
  const size_t quarter = done / 4;
  if (done >= 8 && last > finished[quarter]) summary["photos_per_s_steady"] = rate(done - 1 - quarter, last - finished[quarter]);
}
}  // namespace

nlohmann::ordered_json batch_report(const BatchSummary& s) {
  nlohmann::ordered_json items = nlohmann::ordered_json::array();
  size_t not_processed = 0;
  for (const ItemResult& r : s.items) {
    not_processed += r.status == ItemStatus::NotProcessed;
    nlohmann::ordered_json j = {{"input", r.input}, {"output", r.output}, {"status", item_status_name(r.status)},
                        {"faces", r.faces}, {"time_ms", std::round(r.ms * 10) / 10}};
    j["error"] = r.error.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.error);
    if (r.status == ItemStatus::Done) {
      j["size"] = {r.width, r.height};
      j["stages_ms"] = stage_times_json(r);
      if (!r.colour_profile.empty()) j["colour_profile"] = r.colour_profile;
      j["finished_s"] = std::round(r.finished_s * 1000) / 1000;
    }
    items.push_back(std::move(j));
  }
  const BatchProgress& p = s.progress;
  nlohmann::ordered_json summary = {{"total", p.total},     {"done", p.done},   {"skipped", p.skipped},
                            {"failed", p.failed},   {"not_processed", not_processed},
                            {"faces", p.faces},     {"seconds", std::round(p.elapsed_s * 100) / 100},
                            {"cancelled", s.cancelled}, {"exit_code", batch_exit_code(s)}};
  summary["stopped_by"] = s.fatal_error.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s.fatal_error);
  add_steady_rate(s, summary);
  return {{"summary", summary}, {"items", items}};
}

BatchSummary run_batch(FaceRestorer& restorer, const std::vector<BatchItem>& items, const BatchOptions& options) {
  return BatchRun(restorer, items, options).run();
}

}  // namespace gpen
