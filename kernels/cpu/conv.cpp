#include "kernels/cpu/conv.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/conv_internal.h"
#include "kernels/cpu/generic.h"

namespace gpen::cpu {
namespace {

class GenericConv final : public ConvKernel {
 public:
  GenericConv(const ConvDesc& d, const Tensor& weight) : d_(d), weight_(weight.to(DType::F32)) {}  // shared: weights are never written
  std::string name() const override { return "f32_conv_direct__generic"; }
  void run(const ConvRun& r) const override {
    ref::conv2d(d_, weight_.data<float>(), r.x, r.y, r.in_scale, r.out_scale, r.ep, r.pool);
  }

 private:
  ConvDesc d_;
  Tensor weight_;
};

// Winograd F(4,3) applies to 3x3 stride-1 (non-transposed, ungrouped) convs, and F(4,2) per
// sub-pixel phase to GPEN's upsampling conv (transposed 3x3, stride 2, pad 0); both fall back to
// the direct kernel for feature maps too small for 4x4 tiles.
bool winograd_transposed(const ConvDesc& d) {
  return d.transposed && d.groups == 1 && d.kh == 3 && d.kw == 3 && d.stride == 2 && d.pad == 0;
}
bool winograd_applies(const ConvDesc& d) {
  return winograd_transposed(d) ||
         (!d.transposed && d.groups == 1 && d.kh == 3 && d.kw == 3 && d.stride == 1 && d.pad <= 2);
}
// Where the transposed kernel pays by default (WinogradWeights::Auto): its transformed weights
// (36 x K x C floats) at most 4 MiB, transformed at load, and K >= 64. Measured on Zen 3 (AVX2, 2
// threads, docs/BENCHMARKS.md, session 17): GPEN-512's 256->64 conv at 256 px 16 % faster than the
// direct sub-pixel kernel; its 512->128 (9.4 MiB of weights) and 1024->256/512 convs as fast or
// slower (the weights stream from memory for every block of tiles). Not timed on AVX-512 (whose
// direct kernel is tuned differently) nor against the bf16 direct kernel (twice the f32 rate):
// there the direct kernel stays. An explicit AtLoad/PerRun takes it wherever it applies (tests,
// benchmarks).
bool transposed_winograd_pays(const ConvDesc& d, const KernelOptions& opt, bool avx2) {
  if (opt.winograd_weights != WinogradWeights::Auto) return true;
  return avx2 && opt.precision == Precision::F32 && !opt.lean_memory && d.K >= 64 &&
         36 * int64_t(d.C) * d.K * int64_t(sizeof(float)) <= (int64_t(4) << 20);
}
// 4x4 tiles of a map of h x w: of the output, or of the (h+1) x (w+1) phase grid of a transposed conv.
int64_t winograd_tiles(const ConvDesc& d, int h, int w) {
  const int64_t gh = winograd_transposed(d) ? h + 1 : d.out_h(h), gw = winograd_transposed(d) ? w + 1 : d.out_w(w);
  return ((gh + 3) / 4) * ((gw + 3) / 4);
}

// Winograd weights transformed in every run instead of at load (the kernel then reads the 3x3
// weights, a quarter of the bytes, and transforms them a chunk at a time in L2), where
//  * the transformed weights (36 x K x C floats) pass 8 MiB: they are read from memory in every
//    run anyway, and reading 9 floats a (k, c) instead of 36 costs less than the transform
//    (measured on GPEN-512's 1024->512 convs at 16..64 px and its 512->256 conv at 128 px:
//    as fast or faster on AVX-512 and AVX2, 2 threads; the 4.7 MB of its 256->128 conv at 256 px
//    still favour transforming once: +4% on AVX-512, +9% on AVX2 per run); or
//  * they outweigh the K x OH x OW output of one sample by more than 2x and a sample's map is one
//    block of the kernel's tiles (64 on AVX-512: 32 x 32 px; 24 on AVX2), so the kernel
//    transforms once per sample.
bool winograd_weights_per_run(const ConvDesc& d, const KernelOptions& opt, bool known_size, int tiles_per_block) {
  if (36 * int64_t(d.C) * d.K * int64_t(sizeof(float)) > (int64_t(8) << 20)) return true;
  if (!known_size) return false;
  const int64_t oh = d.out_h(opt.map_h), ow = d.out_w(opt.map_w);
  const bool outweigh = 36 * int64_t(d.C) > 2 * oh * ow;
  return outweigh && winograd_tiles(d, opt.map_h, opt.map_w) <= tiles_per_block;
}

}  // namespace

std::unique_ptr<ConvKernel> make_conv_generic(const ConvDesc& d, const Tensor& weight) {
  const int64_t expected = int64_t(d.K) * (d.C / d.groups) * d.kh * d.kw;
  if (weight.numel() != expected) fail("conv weight has ", weight.numel(), " values, expected ", expected);
  return std::make_unique<GenericConv>(d, weight);
}

std::unique_ptr<ConvKernel> make_conv_kernel(const ConvDesc& d, const Tensor& weight, const KernelOptions& opt) {
  const int64_t expected = int64_t(d.K) * (d.C / std::max(1, d.groups)) * d.kh * d.kw;
  if (weight.numel() != expected) fail("conv weight has ", weight.numel(), " values, expected ", expected);
  const Isa isa = std::min(active_isa(), opt.isa);
  std::unique_ptr<ConvKernel> k;
  // Best first; each factory returns null when it does not handle the shape. BF16 is a request:
  // without AVX-512-BF16 the f32 kernels serve it.
  // Plain 1x1 convs stay f32 in bf16 mode: the f32 kernel reads the input in place, which beats
  // converting it (they are memory bound: encoder 3->64, ToRGB C->3).
  const bool pointwise = !d.transposed && d.kh == 1 && d.kw == 1 && d.stride == 1 && d.pad == 0;
  // Depthwise convs (MobileNet) have a kernel of their own, f32 in every precision (memory bound).
  if (isa >= Isa::AVX512 && (k = make_conv_depthwise_avx512(d, weight))) return k;
  if (isa >= Isa::AVX2 && (k = make_conv_depthwise_avx2(d, weight))) return k;
  // So do dense convs of few input channels, strided (MobileNet's 3 -> 8 first layer on the whole
  // photo: the direct kernel's phase-split copy of the input costs more than the arithmetic) or
  // 1x1 (GPEN's 3 -> 64 encoder input: the direct kernel's scratch and epilogue pass do).
  if (isa >= Isa::AVX512 && (k = make_conv_smallc_avx512(d, weight))) return k;
  if (isa >= Isa::AVX2 && (k = make_conv_smallc_avx2(d, weight))) return k;
  // Winograd runs its direct fallback below one vector of 4x4 output tiles (16 on AVX-512, 8 on
  // AVX2). With a known map size only the algorithm that will run is built.
  const bool known_size = opt.map_h > 0 && opt.map_w > 0;
  auto plan = [&](int tiles_per_vector, bool avx2) {
    if (!opt.winograd || !winograd_applies(d)) return 0;  // direct only
    if (winograd_transposed(d) && !transposed_winograd_pays(d, opt, avx2)) return 0;
    if (!known_size) return 1;                            // unknown size: Winograd with a direct fallback
    return winograd_tiles(d, opt.map_h, opt.map_w) < tiles_per_vector ? 0 : 2;  // 2: Winograd alone
  };
  using WW = WinogradWeights;
  auto weights_per_run = [&](int tiles_per_block) {
    return opt.winograd_weights == WW::PerRun ||
           (opt.winograd_weights == WW::Auto &&
            (opt.lean_memory || winograd_weights_per_run(d, opt, known_size, tiles_per_block)));
  };
  // tiles_per_block: the Winograd kernel's block of tiles (conv_policy_internal.h: NV x W).
  auto build = [&](int how, int tiles_per_block, auto make_direct, auto make_winograd) -> std::unique_ptr<ConvKernel> {
    const bool per_run = weights_per_run(tiles_per_block);
    if (how == 2) return make_winograd(d, weight, nullptr, per_run);
    std::unique_ptr<ConvKernel> direct = make_direct(d, weight);
    return how == 1 ? make_winograd(d, weight, std::move(direct), per_run) : std::move(direct);
  };
  if (isa >= Isa::AVX512_BF16 && opt.precision == Precision::BF16 && !pointwise) {
    // Winograd stays f32 (see conv_internal.h); its small-map fallback is the bf16 direct kernel.
    k = build(plan(16, false), 64, make_conv_direct_avx512bf16, make_conv_winograd_avx512);
    if (k) return k;
  }
  if (isa >= Isa::AVX512) {
    k = build(plan(16, false), 64, make_conv_direct_avx512, make_conv_winograd_avx512);
    if (k) return k;
  }
  if (isa >= Isa::AVX2) {
    k = build(plan(8, true), 24, make_conv_direct_avx2, make_conv_winograd_avx2);
    if (k) return k;
  }
  return make_conv_generic(d, weight);
}

std::unique_ptr<ConvKernel> make_conv_dw_pw(const ConvDesc& dw, const Tensor& dw_weight, const Epilogue& dw_ep,
                                            const ConvDesc& pw, const Tensor& pw_weight, const KernelOptions& opt) {
  if (dw_weight.numel() != int64_t(dw.K) * dw.kh * dw.kw || pw_weight.numel() != int64_t(pw.K) * pw.C)
    fail("depthwise + pointwise conv: weights of ", dw_weight.numel(), " and ", pw_weight.numel(), " values do not fit");
  // Only where it measured faster than the two kernels (RetinaFace-MobileNet on a 1080p photo,
  // one thread): stride-1 blocks of <= 32 channels (960x540 x 8: 4.1 vs 6.0 ms; 480x270 x 32:
  // 4.9 vs 5.2 ms). Strided or wider blocks lost (480x270 x 16, stride 2: 4.6 vs 4.3 ms; 64-128
  // channels: 2.5-3.7 vs 2.1-3.2 ms): there the direct kernel's GEMM outruns the fused 1x1.
  if (dw.stride != 1 || dw.C > 32) return nullptr;
  const Isa isa = std::min(active_isa(), opt.isa);
  if (isa >= Isa::AVX512) return make_conv_dw_pw_avx512(dw, dw_weight, dw_ep, pw, pw_weight);
  if (isa >= Isa::AVX2) return make_conv_dw_pw_avx2(dw, dw_weight, dw_ep, pw, pw_weight);
  return nullptr;
}

}  // namespace gpen::cpu
