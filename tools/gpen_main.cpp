// gpen: GPEN blind face restoration, one binary. See `gpen --help` and README.md.
#include <cstdio>
#include <exception>
#include <map>

#include "core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"gpen: GAN Prior Embedded Network face restoration (C++ engine, no Python)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gpen 0.1.0");
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
