// The `gpen` command line: one file per subcommand, each registering itself on the CLI11 app.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace gpen::cli {

// Each returns the callback that runs the subcommand (exit code), bound to its parsed options.
using Runner = std::function<int()>;
Runner register_info(CLI::App& app);
Runner register_convert(CLI::App& app);
Runner register_enhance(CLI::App& app);
Runner register_detect(CLI::App& app);
Runner register_bench(CLI::App& app);

}  // namespace gpen::cli
