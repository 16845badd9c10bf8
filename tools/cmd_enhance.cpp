// `gpen enhance`: restore faces. With --aligned the input is already a face crop aligned like
// FFHQ and goes straight through GPEN (resized to the model size); otherwise the whole-photo
// pipeline (detect, align, restore, paste back) runs.
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "tools/commands.h"

namespace gpen::cli {
namespace {

struct EnhanceOpts {
  std::vector<std::string> inputs;
  std::string output, model, precision = "fp32", isa;
  bool aligned = false;
  int threads = 0;
};

CompileOptions compile_options(const EnhanceOpts& o) {
  CompileOptions c;
  c.threads = o.threads;
  cpu::parse_precision(o.precision, &c.precision);
  if (!o.isa.empty() && !cpu::parse_isa(o.isa, &c.max_isa)) fail("unknown --isa '", o.isa, "'");
  return c;
}

int enhance_aligned(const EnhanceOpts& o) {
  if (o.inputs.size() != 1) fail("--aligned takes one input image");
  Image img = to_rgb(load_image(o.inputs[0]));
  auto model = std::make_shared<GpenModel>(GpenModel::load(o.model));
  const int S = model->config().size;
  GpenRunner runner(model, std::shared_ptr<Backend>(make_cpu_backend()), compile_options(o));
  Image face = (img.width == S && img.height == S) ? img : resize_bilinear(img, S, S);
  Tensor y = runner.forward(faces_to_tensor({&face}));
  save_image(o.output, tensor_to_face(y, 0));
  std::fprintf(stderr, "restored %s -> %s (%s)\n", o.inputs[0].c_str(), o.output.c_str(),
               model->config().describe().c_str());
  return 0;
}

}  // namespace

Runner register_enhance(CLI::App& app) {
  auto* cmd = app.add_subcommand("enhance", "Restore the faces in photos (or in aligned face crops)");
  auto o = std::make_shared<EnhanceOpts>();
  cmd->add_option("inputs", o->inputs, "input image(s)")->required();
  cmd->add_option("-o,--output", o->output, "output image")->required();
  cmd->add_option("--model", o->model, "GPEN checkpoint (.pth or .safetensors)")->required();
  cmd->add_flag("--aligned", o->aligned, "inputs are aligned face crops: no detection, no paste-back");
  cmd->add_option("--threads", o->threads, "CPU threads (0: all)");
  cmd->add_option("--precision", o->precision, "fp32 or bf16")->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--isa", o->isa, "cap the instruction set: generic, avx2, avx512, avx512bf16");
  return [o]() {
    if (o->aligned) return enhance_aligned(*o);
    fail("whole-photo enhancement needs the face pipeline: use --aligned for aligned face crops");
  };
}

}  // namespace gpen::cli
