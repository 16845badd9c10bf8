// The `gpen` command line: one file per subcommand, each registering itself on the CLI11 app.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace gpen {
struct ModelFetchOptions;  // weights/model_cache.h
}

namespace gpen::cli {

// --models-dir DIR and --offline (tools/cmd_models.cpp), for subcommands whose --model/--detector
// accept a registered name: pass the filled options to gpen::resolve_model().
void add_model_fetch_options(CLI::App* cmd, ModelFetchOptions& opt);

// Each returns the callback that runs the subcommand (exit code), bound to its parsed options.
using Runner = std::function<int()>;
Runner register_info(CLI::App& app);
Runner register_convert(CLI::App& app);
Runner register_enhance(CLI::App& app);
Runner register_detect(CLI::App& app);
Runner register_bench(CLI::App& app);
Runner register_serve(CLI::App& app);
Runner register_models(CLI::App& app);

}  // namespace gpen::cli
