#include "kernels/cpu/generic.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gpen::cpu::ref {
namespace {

// First and one-past-last output index whose input index o*stride + k - pad lies in [0, in).
void valid_range(int out, int in, int stride, int k, int pad, int* lo, int* hi) {
  int a = pad - k;  // need o*stride >= a
  *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  int b = in - 1 + pad - k;  // need o*stride <= b
  *hi = b < 0 ? 0 : std::min(out, b / stride + 1);
  if (*hi < *lo) *hi = *lo;
}

void conv2d_normal_plane(const ConvDesc& d, const float* weight, const View& x, int n, int k, float* acc,
                         int OH, int OW, const float* in_scale) {
  const int cpg = d.C / d.groups, g = k / (d.K / d.groups);
  std::fill(acc, acc + int64_t(OH) * OW, 0.f);
  for (int ci = 0; ci < cpg; ++ci) {
    const int c = g * cpg + ci;
    const float* xp = x.at(n, c);
    const float s = in_scale ? in_scale[int64_t(n) * d.C + c] : 1.f;
    for (int ky = 0; ky < d.kh; ++ky) {
      int oy0, oy1;
      valid_range(OH, x.h, d.stride, ky, d.pad, &oy0, &oy1);
      for (int kx = 0; kx < d.kw; ++kx) {
        int ox0, ox1;
        valid_range(OW, x.w, d.stride, kx, d.pad, &ox0, &ox1);
        const float wv = weight[((int64_t(k) * cpg + ci) * d.kh + ky) * d.kw + kx] * s;
        for (int oy = oy0; oy < oy1; ++oy) {
          const float* row = xp + int64_t(oy * d.stride + ky - d.pad) * x.w;
          float* out = acc + int64_t(oy) * OW;
          for (int ox = ox0; ox < ox1; ++ox) out[ox] += wv * row[ox * d.stride + kx - d.pad];
        }
      }
    }
  }
}

void conv2d_transposed_plane(const ConvDesc& d, const float* weight, const View& x, int n, int k, float* acc,
                             int OH, int OW, const float* in_scale) {
  const int cpg = d.C / d.groups, g = k / (d.K / d.groups);
  std::fill(acc, acc + int64_t(OH) * OW, 0.f);
  for (int ci = 0; ci < cpg; ++ci) {
    const int c = g * cpg + ci;
    const float* xp = x.at(n, c);
    const float s = in_scale ? in_scale[int64_t(n) * d.C + c] : 1.f;
    for (int ky = 0; ky < d.kh; ++ky)
      for (int kx = 0; kx < d.kw; ++kx) {
        const float wv = weight[((int64_t(k) * cpg + ci) * d.kh + ky) * d.kw + kx] * s;
        for (int iy = 0; iy < x.h; ++iy) {
          const int oy = iy * d.stride + ky - d.pad;
          if (oy < 0 || oy >= OH) continue;
          const float* row = xp + int64_t(iy) * x.w;
          float* out = acc + int64_t(oy) * OW;
          for (int ix = 0; ix < x.w; ++ix) {
            const int ox = ix * d.stride + kx - d.pad;
            if (ox >= 0 && ox < OW) out[ox] += wv * row[ix];
          }
        }
      }
  }
}

}  // namespace

void conv2d(const ConvDesc& d, const float* weight, const View& x, const View& y, const float* in_scale,
            const float* out_scale, const Epilogue& ep, ThreadPool* pool) {
  const int OH = d.out_h(x.h), OW = d.out_w(x.w);
  parallel_for(pool, int64_t(x.n) * d.K, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(size_t(OH) * OW);
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / d.K), k = int(i % d.K);
      if (d.transposed)
        conv2d_transposed_plane(d, weight, x, n, k, acc.data(), OH, OW, in_scale);
      else
        conv2d_normal_plane(d, weight, x, n, k, acc.data(), OH, OW, in_scale);
      const float os = out_scale ? out_scale[int64_t(n) * d.K + k] : 1.f;
      float* out = y.at(n, k);
      for (int64_t j = 0; j < int64_t(OH) * OW; ++j) out[j] = ep.apply(acc[j] * os, k);
    }
  });
}

void upfirdn2d(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
               int pad1, const Epilogue& ep, ThreadPool* pool) {
  // Sample j of the upsampled, padded signal is input sample (j - pad0) / up when that is a whole
  // number inside the input, else zero.
  auto source_index = [up](int j, int pad, int in) {
    int t = j - pad;
    if (t < 0 || t % up) return -1;
    t /= up;
    return t < in ? t : -1;
  };
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / x.c), c = int(i % x.c);
      const float* xp = x.at(n, c);
      float* yp = y.at(n, c);
      for (int oy = 0; oy < y.h; ++oy)
        for (int ox = 0; ox < y.w; ++ox) {
          float acc = 0.f;
          for (int ky = 0; ky < kh; ++ky) {
            const int sy = source_index(oy * down + ky, pad0, x.h);
            if (sy < 0) continue;
            for (int kx = 0; kx < kw; ++kx) {
              const int sx = source_index(ox * down + kx, pad0, x.w);
              if (sx < 0) continue;
              acc += xp[int64_t(sy) * x.w + sx] * kernel[(kh - 1 - ky) * kw + (kw - 1 - kx)];
            }
          }
          yp[int64_t(oy) * y.w + ox] = ep.apply(acc, c);
        }
    }
  });
  (void)pad1;  // implied by the output size
}

void linear(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep, ThreadPool* pool) {
  parallel_for(pool, int64_t(n) * out, 0, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int b = int(i / out), o = int(i % out);
      const float* xr = x + int64_t(b) * in;
      const float* wr = w + int64_t(o) * in;
      double acc = 0;  // double: the oracle should not add its own rounding noise on long rows
      for (int j = 0; j < in; ++j) acc += double(xr[j]) * wr[j];
      y[i] = ep.apply(float(acc), o);
    }
  });
}

void pixel_norm(const float* x, float* y, int n, int c, int64_t hw, float eps) {
  for (int b = 0; b < n; ++b)
    for (int64_t p = 0; p < hw; ++p) {
      const float* xb = x + int64_t(b) * c * hw + p;
      double sum = 0;
      for (int ch = 0; ch < c; ++ch) sum += double(xb[ch * hw]) * xb[ch * hw];
      const float r = 1.f / std::sqrt(float(sum / c) + eps);
      float* yb = y + int64_t(b) * c * hw + p;
      for (int ch = 0; ch < c; ++ch) yb[ch * hw] = xb[ch * hw] * r;
    }
}

void scale_bias_act(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool) {
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / x.c), c = int(i % x.c);
      const float* xp = x.at(n, c);
      float* yp = y.at(n, c);
      for (int64_t j = 0; j < x.plane(); ++j) yp[j] = ep.apply(xp[j] * scale, c);
    }
  });
}

void add(const View& a, const View& b, const View& y, ThreadPool* pool) {
  parallel_for(pool, int64_t(a.n) * a.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / a.c), c = int(i % a.c);
      const float *ap = a.at(n, c), *bp = b.at(n, c);
      float* yp = y.at(n, c);
      for (int64_t j = 0; j < a.plane(); ++j) yp[j] = ap[j] + bp[j];
    }
  });
}

void demod_factors(const float* style, const float* wsq, float* d, int n, int C, int K, float eps) {
  for (int b = 0; b < n; ++b)
    for (int k = 0; k < K; ++k) {
      double sum = 0;
      for (int c = 0; c < C; ++c) {
        const double s = style[int64_t(b) * C + c];
        sum += s * s * wsq[int64_t(k) * C + c];
      }
      d[int64_t(b) * K + k] = float(1.0 / std::sqrt(sum + eps));
    }
}

void weight_sq_sums(const float* weight, float* wsq, int K, int C, int khkw) {
  for (int64_t i = 0; i < int64_t(K) * C; ++i) {
    double sum = 0;
    for (int j = 0; j < khkw; ++j) sum += double(weight[i * khkw + j]) * weight[i * khkw + j];
    wsq[i] = float(sum);
  }
}

void upsample_nearest(const View& x, const View& y, ThreadPool* pool) {
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / x.c), c = int(i % x.c);
      const float* xp = x.at(n, c);
      float* yp = y.at(n, c);
      for (int oy = 0; oy < y.h; ++oy) {
        const int sy = std::min(x.h - 1, int(int64_t(oy) * x.h / y.h));
        for (int ox = 0; ox < y.w; ++ox) {
          const int sx = std::min(x.w - 1, int(int64_t(ox) * x.w / y.w));
          yp[int64_t(oy) * y.w + ox] = xp[int64_t(sy) * x.w + sx];
        }
      }
    }
  });
}

void max_pool2d(const View& x, const View& y, int k, int stride, int pad, ThreadPool* pool) {
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / x.c), c = int(i % x.c);
      const float* xp = x.at(n, c);
      float* yp = y.at(n, c);
      for (int oy = 0; oy < y.h; ++oy) {
        const int y0 = std::max(0, oy * stride - pad), y1 = std::min(x.h, oy * stride - pad + k);
        for (int ox = 0; ox < y.w; ++ox) {
          const int x0 = std::max(0, ox * stride - pad), x1 = std::min(x.w, ox * stride - pad + k);
          float m = -INFINITY;
          for (int sy = y0; sy < y1; ++sy)
            for (int sx = x0; sx < x1; ++sx) m = std::max(m, xp[int64_t(sy) * x.w + sx]);
          yp[int64_t(oy) * y.w + ox] = m;
        }
      }
    }
  });
}

namespace {
// Source index of padded position p (in [-pad, n + pad)) under reflection.
int reflect_index(int p, int n) {
  if (p < 0) return -p;
  if (p >= n) return 2 * (n - 1) - p;
  return p;
}
}  // namespace

void reflect_pad2d(const View& x, const View& y, int pad, ThreadPool* pool) {
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / x.c), c = int(i % x.c);
      const float* xp = x.at(n, c);
      float* yp = y.at(n, c);
      for (int oy = 0; oy < y.h; ++oy) {
        const float* row = xp + int64_t(reflect_index(oy - pad, x.h)) * x.w;
        float* out = yp + int64_t(oy) * y.w;
        for (int ox = 0; ox < y.w; ++ox) out[ox] = row[reflect_index(ox - pad, x.w)];
      }
    }
  });
}

void pixel_unshuffle(const View& x, const View& y, int r, ThreadPool* pool) {
  parallel_for(pool, int64_t(y.n) * y.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int n = int(i / y.c), oc = int(i % y.c);
      const int c = oc / (r * r), dy = oc / r % r, dx = oc % r;
      const float* xp = x.at(n, c);
      float* yp = y.at(n, oc);
      for (int oy = 0; oy < y.h; ++oy)
        for (int ox = 0; ox < y.w; ++ox) yp[int64_t(oy) * y.w + ox] = xp[int64_t(oy * r + dy) * x.w + ox * r + dx];
    }
  });
}

}  // namespace gpen::cpu::ref
