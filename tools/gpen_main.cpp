// gpen: GPEN blind face restoration, one binary. See `gpen --help` and README.md.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/colour_management.h"
#include "core/device.h"
#include "core/error.h"
#include "core/image.h"
#include "kernels/cpu/isa.h"
#include "tools/commands.h"
#include "weights/download.h"

namespace {

// Every photo allocates and frees buffers of a few to a few tens of MB (the decoded photo, the
// detector's input, face crops, the encoded file). glibc maps each such buffer freshly and
// returns it on free, so every photo paid its pages again: on the dev VM a 1080p photo's decode
// went from 13 ms alone to 27 ms in the pipeline. Keeping freed memory up to 64 MB per arena for
// reuse halves that; only the return of freed memory to the OS after a burst is later. Memory
// freed for good -- a checkpoint's tensors once the model is prepared, GPEN's f32 conv weights
// once packed -- would then stay resident as heap holes (GPEN-512 peak 836 -> 1147 MB), so those
// places hand it back explicitly (release_free_heap, core/memory.h). A user's own GLIBC_TUNABLES
// for malloc win.
void keep_freed_photo_buffers() {
#ifdef __GLIBC__
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum: buffers up to 32 MB come from the heap
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

}  // namespace

// What --device auto would find: the GPUs, or why there are none (no driver, no module, ...).
std::string cuda_text() {
  const gpen::CudaModule& m = gpen::CudaModule::instance();
  if (!m.usable()) return "no usable GPU: " + m.why_unusable();
  std::string text = std::to_string(m.device_count()) + " GPU(s)";
  for (int i = 0; i < m.device_count(); ++i) text += std::string(i ? ", " : ": ") + m.device_info(i).name;
  return text;
}

// `gpen --version`: the version, and what this build can do that depends on the libraries it was
// built with (the static build goes without some: docs/MODELS.md).
std::string version_text() {
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  return std::string("gpen 0.1.0\n") + "HEIF/AVIF input (libheif): " + yes(gpen::heif_supported()) +
         "\ncolour management (lcms2): " + yes(gpen::colour_management_supported()) +
         "\nmodel downloads (libcurl): " + yes(gpen::download_supported()) +
         "\nCPU kernels: " + gpen::cpu::isa_name(gpen::cpu::active_isa()) + "\nCUDA: " + cuda_text();
}

int main(int argc, char** argv) {
  keep_freed_photo_buffers();
  CLI::App app{"gpen: GAN Prior Embedded Network face restoration (C++ engine, no Python)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text);
  std::map<CLI::App*, gpen::cli::Runner> runners;
  auto add = [&](gpen::cli::Runner (*reg)(CLI::App&)) {
    gpen::cli::Runner r = reg(app);
    runners[app.get_subcommands({}).back()] = std::move(r);
  };
  add(gpen::cli::register_enhance);
  add(gpen::cli::register_detect);
  add(gpen::cli::register_info);
  add(gpen::cli::register_convert);
  add(gpen::cli::register_bench);
  add(gpen::cli::register_serve);
  add(gpen::cli::register_models);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const gpen::Error& e) {
    std::fprintf(stderr, "gpen: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "gpen: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpen: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
