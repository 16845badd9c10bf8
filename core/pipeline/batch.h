// Batch restoration of many photos, with the "nothing lost" guarantees: inputs are only read;
// each output is encoded in memory, written to a temporary file beside its destination, synced
// and renamed over it (never a half-written output); an existing output is skipped unless
// `overwrite` (so an interrupted batch resumes where it stopped); a photo that cannot be read or
// processed is reported and the batch goes on; an output that cannot be written (disk full,
// folder gone or not writable) stops the batch at once, leaving no partial file; a cancel request
// lets the photos already in the pipeline finish and starts no new one.
//
// The photos flow through three overlapping stages with small bounded queues between them:
//   decode + max-size + denoise + detect + align  ->  GPEN  ->  face controls + paste + finishing
//   filters + encode + write
// Stages 1 and 3 run on several worker threads each (BatchOptions::prepare_workers,
// finish_workers), every worker on its own photo, so photos reach GPEN and finish out of order;
// results are recorded by input index. GPEN runs on the caller's thread (and, with
// BatchOptions::gpen_streams > 1, on more threads, each with its own twin of the runner) and
// fills each batch with faces of the photos in the order they arrive, across photos.
//
// Used by `gpen enhance` (tools/cmd_enhance.cpp); the CLI only parses flags and shows progress.
#pragma once
#include <atomic>
#include <cerrno>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.h"
#include "core/image.h"
#include "core/pipeline/face_restorer.h"

namespace gpen {

// --- planning: which inputs, which outputs --------------------------------------------------------

struct BatchInputs {
  std::vector<std::string> paths;  // files and folders
  std::string list_file;           // optional: one path per line ('#' comments, blank lines skipped)
  bool recursive = false;          // descend into sub-folders of folder inputs (mirrored in the output)
};

struct OutputNaming {
  std::string dir;         // output folder (folder mode)
  std::string file;        // or: the one output file (single-photo mode; exactly one input file)
  std::string suffix;      // appended to the input's stem
  std::string format;      // "png" | "jpg" | "webp" | "tif" | "bmp"; empty: keep the input's
                           // (HEIF/AVIF inputs: jpg; other extensions: png)
};

struct BatchItem {
  std::string input, output;
  std::string error;  // set when planning already knows this input cannot be processed
};

// Expands folders (image files by extension, hidden files skipped, sorted by name) and the list
// file, and names each output: OUT/<sub-folders under the input folder>/<stem><suffix>.<ext>.
// Inputs that are missing, would overwrite an input, or collide with another input's output get
// an `error` instead of failing the whole plan. Throws gpen::Error for an unreadable list file.
std::vector<BatchItem> plan_batch(const BatchInputs& inputs, const OutputNaming& naming);

// True for .png .jpg .jpeg .webp (any case): what folder discovery picks up.
bool has_image_extension(const std::string& path);

// --- writing ---------------------------------------------------------------------------------------

// Writing an output failed: the batch stops (the next writes would fail the same way).
class OutputError : public Error {
 public:
  using Error::Error;
};

// Writes `bytes` to a temporary file in path's folder, fsyncs, renames it to `path`. On failure
// the temporary file is removed and OutputError says what and why ("No space left on device").
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

// Creates `dir` (and parents) and checks a file can be created in it. Throws OutputError.
void ensure_writable_dir(const std::string& dir);

// --- running ---------------------------------------------------------------------------------------

enum class ItemStatus { Pending, Done, Skipped, Failed, NotProcessed };
const char* item_status_name(ItemStatus s);  // "pending", "done", "skipped", "failed", "not processed"

struct ItemResult {
  std::string input, output;
  ItemStatus status = ItemStatus::Pending;
  int faces = 0;
  double ms = 0;          // processing time summed over its stages (decode .. write)
  StageTimes times;
  double decode_ms = 0;  // reading and decoding the input, with the max_size cap
  double encode_ms = 0, write_ms = 0;
  double finished_s = 0;      // when its result came, in seconds from the batch's start
  int width = 0, height = 0;  // of the output
  std::string colour_profile;  // RestoreResult::colour_profile
  std::string error;
};

struct BatchProgress {
  size_t total = 0, finished = 0;  // finished: done + skipped + failed
  size_t done = 0, skipped = 0, failed = 0;
  size_t faces = 0;                // restored so far
  double elapsed_s = 0;
};

struct BatchOptions {
  RestoreOptions restore;
  int quality = 95;          // JPEG / WebP
  bool keep_metadata = true; // outputs keep the input's ICC profile, EXIF and density (ImageMetadata)
  bool keep_16bit = true;    // 16-bit PNG/TIFF inputs give 16-bit PNG/TIFF outputs (EncodeOptions::keep_16bit)
  int max_size = 0;          // > 0: photos whose long side exceeds this are area-downscaled first
  bool overwrite = false;
  std::string save_faces_dir;  // write each aligned crop and its restored version here
  int queue_depth = 2;       // photos waiting between two stages
  // Worker threads of stage 1 (decode .. align) and stage 3 (paste .. write); 0: the default,
  // default_stage_workers(). Stage 1 uses one worker when restore.upscaler is set (RealESRNet runs
  // one photo at a time). With several stage-1 workers each gets its own detector copy with
  // (the restorer's detector threads / workers) threads, so they share the cores instead of each
  // fanning out over all of them; stage-3 workers share the restorer's pool (a worker that finds
  // it busy runs its filters serially).
  int prepare_workers = 0;
  int finish_workers = 0;
  // GPEN stage threads, each filling and running its own batches on its own twin of the GPEN
  // runner (GpenRunner::twin); 0: 2 when GPEN runs on a GPU (one batch's host-side conversions
  // and memory-bound passes overlap the other's convolutions), 1 on the CPU (where one forward
  // already uses every core).
  int gpen_streams = 0;
  // Set (e.g. from a SIGINT handler) to stop: no new photo starts, those in flight finish.
  const std::atomic<bool>* cancel = nullptr;
  // Called after each input is finished (any status), one call at a time, from a worker thread.
  std::function<void(const ItemResult&, const BatchProgress&)> on_item;
  // Where outputs go; tests inject failures here. Default: write_file_atomic. Called from the
  // stage-3 workers: concurrently when there are several.
  std::function<void(const std::string& path, const std::vector<uint8_t>& bytes)> write_file;
};

struct BatchSummary {
  std::vector<ItemResult> items;  // in input order
  BatchProgress progress;
  bool cancelled = false;
  std::string fatal_error;        // set when an output could not be written and the batch stopped
};

// Workers per CPU stage when BatchOptions leaves it at 0. With GPEN on the CPU: max(1, hardware
// threads / 4), so that stages 1 and 3 together keep about half the cores busy with photo-level
// parallelism and leave the rest to GPEN and the work inside a photo (detector threads,
// paste-back pool). With GPEN on a GPU the CPU stages are the whole CPU load and bound the photo
// rate (on the H200 machine a 1080p photo took ~48 ms of stage 1 and ~45 ms of stage 3, so 4
// workers a stage capped it near 85 photos/s): hardware threads / 2.
int default_stage_workers(bool gpen_on_cpu = true);

// 0: everything done or skipped; 3: finished with failures; 1: stopped on an output error;
// 130: cancelled (the shell's code for Ctrl-C).
int batch_exit_code(const BatchSummary& s);

// {"summary": {...}, "items": [{"input", "output", "status", "faces", "time_ms", "error"}...]}; a
// done item also has "size" and "stages_ms" (decode, [upscale,] detect, align, gpen (its share of
// its batches), paste (with the finishing filters), encode, write).
nlohmann::ordered_json batch_report(const BatchSummary& s);

BatchSummary run_batch(FaceRestorer& restorer, const std::vector<BatchItem>& items, const BatchOptions& options);

}  // namespace gpen
