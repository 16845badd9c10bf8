#include "core/models/batch_norm.h"

#include <cmath>

#include "core/error.h"

namespace gpen {

PreparedConv fold_batch_norm(const Tensor& w, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                           const Tensor& var, const std::string& bn) {
  const int64_t K = w.dim(0), per = w.numel() / K;
  for (const Tensor* t : {&gamma, &beta, &mean, &var})
    if (t->numel() != K) fail("BatchNorm '", bn, "' has ", t->numel(), " channels where its conv has ", K);
  PreparedConv c{Tensor::empty(DType::F32, w.shape()), Tensor::empty(DType::F32, {K})};
  const float *wi = w.data<float>(), *g = gamma.data<float>(), *bt = beta.data<float>(), *mu = mean.data<float>(),
              *vr = var.data<float>();
  float *wo = c.w.data<float>(), *bo = c.b.data<float>();
  for (int64_t k = 0; k < K; ++k) {
    const double v = vr[k];
    if (!(v >= 0) || !std::isfinite(v)) fail("key '", bn, ".running_var' has a negative or non-finite value ", v);
    const double s = double(g[k]) / std::sqrt(v + kBatchNormEps);
    for (int64_t i = 0; i < per; ++i) wo[k * per + i] = float(wi[k * per + i] * s);
    bo[k] = float(double(bt[k]) - double(mu[k]) * s);
  }
  return c;
}

}  // namespace gpen
