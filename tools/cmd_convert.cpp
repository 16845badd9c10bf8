// `gpen info MODEL` and `gpen convert IN OUT.safetensors [--dtype f32|f16|bf16]`. IN may be a .pth,
// a .safetensors, or an ONNX export of GPEN (weights/onnx_gpen.h maps it onto the official keys).
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "core/models/gpen.h"
#include "tools/commands.h"
#include "weights/safetensors.h"

namespace gpen::cli {
namespace {

// Names the floating dtypes a state dict holds, e.g. "f32" or "f16+i64".
std::string dtypes_of(const StateDict& sd) {
  std::map<std::string, int> seen;
  for (const auto& [k, t] : sd.tensors) seen[dtype_name(t.dtype())]++;
  std::string s;
  for (const auto& [name, n] : seen) s += (s.empty() ? "" : "+") + name;
  return s;
}

}  // namespace

Runner register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Describe a checkpoint: model variant, parameters, dtype");
  auto path = std::make_shared<std::string>();
  cmd->add_option("model", *path, "checkpoint (.pth, .safetensors, or a GPEN .onnx export)")->required();
  return [path]() {
    StateDict sd = load_gpen_weights(*path);
    int64_t total = 0;
    for (const auto& [k, t] : sd.tensors) total += t.numel();
    std::printf("file:       %s\n", path->c_str());
    std::printf("tensors:    %zu (%lld values, %s)\n", sd.tensors.size(), (long long)total, dtypes_of(sd).c_str());
    if (sd.has("ecd0.0.0.weight")) {
      GpenModel m = GpenModel::from_state_dict(sd);
      std::printf("model:      %s\n", m.config().describe().c_str());
      std::printf("parameters: %lld\n", (long long)m.parameter_count());
      std::printf("flops:      %.1f GFLOP per face\n", double(m.build_graph(1).flops()) / 1e9);
    } else {
      std::printf("model:      not a GPEN generator\n");
    }
    for (const auto& [k, v] : sd.metadata) std::printf("metadata:   %s = %s\n", k.c_str(), v.c_str());
    return 0;
  };
}

Runner register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Convert a checkpoint (.pth zip or legacy, or a GPEN .onnx export) to safetensors");
  struct Opts {
    std::string in, out, dtype = "f32";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("input", o->in, "checkpoint to read (.pth, .safetensors or .onnx)")->required();
  cmd->add_option("output", o->out, "safetensors file to write")->required();
  cmd->add_option("--dtype", o->dtype, "floating-point storage type")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  return [o]() {
    StateDict sd = load_gpen_weights(o->in);
    std::map<std::string, std::string> meta;
    if (sd.has("ecd0.0.0.weight")) meta = GpenModel::from_state_dict(sd).config().to_metadata();
    meta["gpen.source"] = o->in.substr(o->in.find_last_of('/') + 1);
    DType dt;
    parse_dtype(o->dtype, &dt);
    save_safetensors(o->out, sd, dt, meta);
    std::printf("wrote %s (%zu tensors, %s)\n", o->out.c_str(), sd.tensors.size(), o->dtype.c_str());
    return 0;
  };
}

}  // namespace gpen::cli
