// BatchNorm folded into the convolution before it, once at load (inference uses the running
// statistics): w' = w * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps), in double.
// Shared by the models whose checkpoints keep BatchNorm layers (RetinaFace, ParseNet).
#pragma once
#include <string>

#include "core/models/conv_table.h"
#include "core/tensor.h"

namespace gpen {

constexpr double kBatchNormEps = 1e-5;  // PyTorch's default, used by every supported checkpoint

// `bn` names the BatchNorm in errors (a negative or non-finite running_var is refused).
PreparedConv fold_batch_norm(const Tensor& w, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                           const Tensor& var, const std::string& bn);

}  // namespace gpen
