// `gpen serve`: the web page and the JSON API (docs/API.md) in the same binary.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/device.h"
#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "tools/commands.h"
#include "tools/server/http_server.h"

namespace gpen::cli {
namespace {

struct ServeOpts {
  server::ServerConfig http;
  server::QueueConfig queue;
  server::EngineConfig engine;
  std::string outputs = "outputs", precision = "fp32", isa;
  int threads = 0, batch_size = 0;
  size_t max_upload_mb = 64;
  int64_t max_pixels = 40'000'000;
  bool quiet = false;
};

server::HttpServer* g_server = nullptr;
extern "C" void on_signal(int) {
  if (g_server) g_server->stop();  // makes serve() return; the queue then drains its workers
}

int serve(ServeOpts& o) {
  if (o.http.token.empty())
    if (const char* env = std::getenv("GPEN_TOKEN")) o.http.token = env;
  o.http.max_upload_bytes = o.max_upload_mb << 20;
  o.http.log_requests = !o.quiet;
  o.queue.limits.max_pixels = o.max_pixels;
  o.engine.compile.threads = o.threads;
  // --precision as for gpen enhance: fp32 / bf16 are the CPU's, tf32 / fp16 the GPU's convolutions.
  const DeviceRequest dev = parse_device(o.engine.device);
  if (!parse_gpu_precision(o.precision, &o.engine.gpu_precision) && o.precision != "bf16")
    fail("unknown --precision '", o.precision, "'");
  if (dev.kind == DeviceRequest::Kind::Cpu && (o.precision == "tf32" || o.precision == "fp16"))
    fail("--precision ", o.precision, " needs a CUDA device (the CPU runs fp32 or bf16)");
  if (dev.kind == DeviceRequest::Kind::Cuda && o.precision == "bf16")
    fail("--precision bf16 is the CPU's; on CUDA use fp32, tf32 or fp16");
  if (o.precision == "fp32" || o.precision == "bf16") cpu::parse_precision(o.precision, &o.engine.compile.precision);
  if (!o.isa.empty() && !cpu::parse_isa(o.isa, &o.engine.compile.max_isa)) fail("unknown --isa '", o.isa, "'");
  const std::string bf16_note = cpu::precision_note(o.engine.compile.precision, o.engine.compile.max_isa);
  if (!bf16_note.empty()) std::fprintf(stderr, "gpen serve: note: %s\n", bf16_note.c_str());

  server::Engine engine(o.engine);
  server::OutputStore outputs(o.outputs);
  server::Settings settings;
  settings.auto_download = o.engine.download;
  settings.device = dev.kind == DeviceRequest::Kind::Cpu    ? server::Device::Cpu
                    : dev.kind == DeviceRequest::Kind::Cuda ? server::Device::Cuda
                                                            : server::Device::Auto;
  if (o.batch_size > 0) settings.batch_size = o.batch_size;
  server::JobQueue queue(engine, outputs, settings, o.queue);
  server::HttpServer http(o.http, queue, engine);
  const int port = http.bind();
  std::printf("gpen serve: listening on http://%s:%d/ (outputs in %s)\n", o.http.host.c_str(), port,
              outputs.dir().c_str());
  std::fflush(stdout);
  g_server = &http;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  http.serve();
  g_server = nullptr;
  return 0;
}

}  // namespace

Runner register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Web UI and HTTP API (see docs/API.md)");
  auto o = std::make_shared<ServeOpts>();
  cmd->add_option("--host", o->http.host, "address to listen on (non-loopback needs --token)");
  cmd->add_option("--port", o->http.port, "port (0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--token", o->http.token, "require 'Authorization: Bearer TOKEN' on /api/* (or set GPEN_TOKEN)");
  cmd->add_option("--model", o->engine.model, "GPEN checkpoint, registered name (GPEN-BFR-512), or random:SIZE")->required();
  cmd->add_option("--detector", o->engine.detector, "RetinaFace checkpoint or registered name (without: aligned crops only)");
  cmd->add_option("--models-dir", o->engine.models_dir, "model cache for registered names (default: $GPEN_MODELS, ~/.cache/gpen)");
  cmd->add_flag("--auto-download", o->engine.download, "download a registered model missing from the cache");
  cmd->add_option("--outputs", o->outputs, "folder for the results (outputs_YYYYMMDDHHMMSS.png)");
  cmd->add_option("--workers", o->queue.workers, "jobs run at the same time")->check(CLI::Range(1, 64));
  cmd->add_option("--queue", o->queue.max_queued, "jobs waiting beyond the running ones; more get 503")
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--max-upload-mb", o->max_upload_mb, "request body limit (413 beyond)")->check(CLI::Range(1, 4096));
  cmd->add_option("--max-pixels", o->max_pixels, "image size limit in pixels (413 beyond)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--threads", o->threads, "CPU threads per worker (0: all)");
  cmd->add_option("--device", o->engine.device, "auto (CUDA when a usable GPU is present), cpu, cuda or cuda:N; the settings tab can change it");
  cmd->add_option("--precision", o->precision, "CPU: fp32 or bf16; CUDA: fp32, tf32 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "tf32", "fp16"}));
  cmd->add_option("--streams", o->engine.gpu_streams, "GPEN batches in flight at once on the GPU, each on its own stream")
      ->check(CLI::Range(1, 8));
  cmd->add_option("--batch-size", o->batch_size, "faces per GPEN forward (on the GPU: faces of concurrent photos share it)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--isa", o->isa, "cap the instruction set: generic, avx2, avx512, avx512bf16");
  cmd->add_flag("--quiet", o->quiet, "no per-request log lines");
  return [o]() { return serve(*o); };
}

}  // namespace gpen::cli
