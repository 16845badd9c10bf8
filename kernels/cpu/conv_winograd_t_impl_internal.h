// Winograd for GPEN's upsampling conv: transposed 3x3, stride 2, pad 0 (output 2H+1, the
// StyleGAN2 conv_transpose2d before the blur), f32, templated on an element policy P like
// conv_winograd_impl_internal.h (include after it, inside the per-ISA namespace).
//
// The transposed conv is four sub-pixel phases over the input grid: output (2gy + py, 2gx + px)
// gets the taps whose row/column parity matches, so along each axis a phase has two taps (even
// parity: input offsets -1 and 0, weights w[2], w[0]) or one (odd: offset 0, weight w[1]).
// The direct kernel spends 9 multiplies per input pixel and output channel (4 + 2 + 2 + 1).
// Here each 4x4 tile of the phase grid takes its 5x5 input patch d (rows/cols -1..3) through
// Winograd F(4,2) along every two-tap axis and the identity along every one-tap axis:
//     phase (0,0): 5 x 5 = 25 products   Y = A^T [U .* (B^T d B)] A
//     phase (0,1): 5 x 4 = 20            Y = A^T [U .* (B^T d')]     (d' = columns 0..3 of d)
//     phase (1,0): 4 x 5 = 20            Y = [U .* (d'' B)] A        (d'' = rows 1..4)
//     phase (1,1): 4 x 4 = 16            Y = U .* d'''
// 81 multiplies per 64 outputs instead of 144 (1.78x fewer). The 81 products are 81 GEMMs
// M[xi][k][tile] = sum_c U[u(xi)][k][c] * V[xi][c][tile] over 36 distinct weight matrices
// (25 + 5 + 5 + 1: a one-tap axis reuses the same U for its 4 positions), run by the policy's
// micro-kernel exactly as in WinogradConv: vectors over tiles, wide maps through P::extract6
// (first 5 of the 6 columns), narrow ones gathered from a padded copy, output rows of both column
// phases interleaved into whole rows. Weights: U transformed at load, or kept as 3x3 weights and
// transformed per run, chunk by chunk, where U would pass 8 MiB (same rule as WinogradConv).
//
// F(4,2) from the points 0, 1, -1, 2, inf (Toom-Cook; fractions moved into G):
//   B^T = [2 -1 -2 1 0; 0 2 1 -1 0; 0 -2 3 -1 0; 0 -1 0 1 0; 0 2 -1 -2 1]
//   G   = [1/2 0; 1/2 1/2; 1/6 -1/6; 1/6 1/3; 0 1]
//   A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]
// (checked exactly against the correlation y[i] = g0 d[i] + g1 d[i+1] with rational arithmetic).

// out = B^T z for one 5-point column or row of the input patch.
template <class S>
inline void winograd_bt5(const typename S::V* z, typename S::V* out) {
  using V = typename S::V;
  const V two = S::set1(2.f), three = S::set1(3.f);
  const V d31 = S::sub(z[3], z[1]);
  out[0] = S::fmadd(two, S::sub(z[0], z[2]), d31);
  out[1] = S::fmadd(two, z[1], S::sub(z[2], z[3]));
  out[2] = S::fnmadd(two, z[1], S::sub(S::mul(three, z[2]), z[3]));
  out[3] = d31;
  out[4] = S::fnmadd(two, d31, S::sub(z[4], z[2]));
}

// o = A^T m for one 5-point column or row of M.
template <class S>
inline void winograd_at5(const typename S::V* m, typename S::V* o) {
  using V = typename S::V;
  const V a = S::add(m[1], m[2]), b = S::sub(m[1], m[2]);
  o[0] = S::add(S::add(m[0], a), m[3]);
  o[1] = S::fmadd(S::set1(2.f), m[3], b);
  o[2] = S::fmadd(S::set1(4.f), m[3], a);
  o[3] = S::add(S::fmadd(S::set1(8.f), m[3], b), m[4]);
}

// out = G x for a two-tap pair (x0 at input offset -1, x1 at offset 0).
template <class S>
inline void winograd_g5(typename S::V x0, typename S::V x1, typename S::V* out) {
  out[0] = S::mul(S::set1(0.5f), x0);
  out[1] = S::mul(S::set1(0.5f), S::add(x0, x1));
  out[2] = S::mul(S::set1(1 / 6.f), S::sub(x0, x1));
  out[3] = S::fmadd(S::set1(1 / 6.f), x0, S::mul(S::set1(1 / 3.f), x1));
  out[4] = x1;
}

template <class P>
class WinogradConvT final : public ConvKernel {
  using S = typename P::S;
  using V = typename S::V;
  static constexpr int KT = P::KT, NV = P::NV, VW = P::W, LD = NV * VW;
  static constexpr int NX = 81;  // products per tile (see above)
  static constexpr int NU = 36;  // distinct transformed weight matrices
  // First product of each phase: (0,0) 25 [a*5 + b], (0,1) 20 [a*4 + j], (1,0) 20 [i*5 + b], (1,1) 16.
  static constexpr int X00 = 0, X01 = 25, X10 = 45, X11 = 65;
  static_assert(P::CU == 1, "f32 only");

 public:
  static bool supports(const ConvDesc& d) {
    return d.transposed && d.groups == 1 && d.kh == 3 && d.kw == 3 && d.stride == 2 && d.pad == 0 && d.C >= 1 &&
           d.K >= 1;
  }

  WinogradConvT(const ConvDesc& d, const float* w, std::unique_ptr<ConvKernel> small, bool weights_per_run)
      : d_(d), ktiles_(int(div_up(d.K, KT))), small_(std::move(small)), per_run_(weights_per_run) {
    name_ = std::string(P::dtype) + "_convT3x3s2_winograd_f42_" + std::to_string(KT) + "x" + std::to_string(LD) +
            (per_run_ ? "_wt" : "") + "__" + P::isa;
    if (small_) name_ += "|" + small_->name();
    pack_weights_3x3(w);
    if (!per_run_) {
      u_.resize(size_t(NU) * ktiles_ * d_.C * KT);
      transform_weights(0, ktiles_, int64_t(ktiles_) * d_.C * KT, u_.data());
      g9_ = AlignedArray<float>();
    }
  }

  std::string name() const override { return name_; }

  size_t scratch_bytes(int n, int h, int w) const override {
    const Geo g = geometry(h, w);
    return small_ && int64_t(g.ty) * g.tx < VW ? small_->scratch_bytes(n, h, w) : 0;
  }

  void run(const ConvRun& r) const override {
    if (r.x.h <= 0 || r.x.w <= 0 || r.x.n <= 0) return;
    const Geo g = geometry(r.x.h, r.x.w);
    if (small_ && int64_t(g.ty) * g.tx < VW) return small_->run(r);
    // Blocking as in WinogradConv: an item is (sample, block of NV slots, group of output-channel
    // tiles); M of a chunk of output channels (81 x chunk x KT x LD floats) stays in L2.
    int kchunk = std::max(1, std::min(ktiles_, int(512 * 1024 / (NX * KT * LD * sizeof(float)))));
    if (per_run_) kchunk = std::max(1, std::min(kchunk, int((1 << 20) / (NU * KT * d_.C * sizeof(float)))));
    const int threads = r.pool ? r.pool->size() : 1, N = r.x.n;
    const int blocks = int(div_up(g.slots, NV));
    auto balance = [&](int kg) {
      const int64_t items = int64_t(N) * blocks * kg;
      return double(items) / double(threads * div_up(items, threads));
    };
    int kgroups = 1;
    while (kgroups < ktiles_ && balance(kgroups) < 0.85) ++kgroups;
    const int per_group = int(div_up(ktiles_, kgroups));
    parallel_for(r.pool, int64_t(N) * blocks * kgroups, 1, [&](int64_t b, int64_t e) {
      float* vb = thread_scratch<float>(1, size_t(NX) * v_stride());
      float* m = thread_scratch<float>(2, size_t(NX) * kchunk * KT * LD);
      float* uc = per_run_ ? thread_scratch<float>(0, size_t(NU) * u_chunk_stride(kchunk)) : nullptr;
      for (int64_t i = b; i < e; ++i) {
        const int n = int(i / (int64_t(blocks) * kgroups)), rest = int(i % (int64_t(blocks) * kgroups));
        const int blk = rest / kgroups, kg = rest % kgroups;
        const int s0 = blk * NV, ns = std::min(NV, g.slots - s0);
        const int kt0 = kg * per_group, kt1 = std::min(ktiles_, kt0 + per_group);
        if (kt0 >= kt1) continue;
        input_transform(r, g, n, s0, ns, vb);
        for (int kc = kt0; kc < kt1; kc += kchunk) {
          const int kce = std::min(kt1, kc + kchunk);
          if (per_run_) {
            transform_weights(kc, kce, u_chunk_stride(kchunk), uc);
            gemm(vb, ns, kc, kce, kchunk, Panels{uc, u_chunk_stride(kchunk), kc}, m);
          } else {
            gemm(vb, ns, kc, kce, kchunk, Panels{u_.data(), int64_t(ktiles_) * d_.C * KT, 0}, m);
          }
          output_transform(r, g, n, s0, ns, kc, kce, kchunk, m);
        }
      }
    });
  }

 private:
  struct Geo {
    int OH, OW, ty, tx, spr, slots;
    bool wide;
  };

  // The phase grid is (H+1) x (W+1) (phase 0 of each axis is one longer than phase 1).
  Geo geometry(int H, int W) const {
    Geo g;
    g.OH = d_.out_h(H), g.OW = d_.out_w(W);
    g.ty = int(div_up(H + 1, 4)), g.tx = int(div_up(W + 1, 4));
    g.wide = g.tx >= VW;
    g.spr = int(div_up(g.tx, VW));
    g.slots = g.wide ? g.ty * g.spr : int(div_up(int64_t(g.ty) * g.tx, VW));
    return g;
  }

  // Which weight matrix product xi multiplies.
  static int u_index(int xi) {
    if (xi < X01) return xi;                      // (0,0): U[a][b]
    if (xi < X10) return 25 + (xi - X01) / 4;     // (0,1): U[a], 4 column positions
    if (xi < X11) return 30 + (xi - X10) % 5;     // (1,0): U[b], 4 row positions
    return 35;                                    // (1,1): the centre tap
  }

  int64_t v_stride() const { return int64_t(d_.C) * LD + 16; }
  int64_t u_chunk_stride(int kbs) const { return int64_t(kbs) * d_.C * KT + 16; }

  void pack_weights_3x3(const float* w) {
    const int64_t n = int64_t(d_.C) * KT;
    g9_.resize(size_t(ktiles_) * 9 * n);
    float* dst = g9_.data();
    for (int kt = 0; kt < ktiles_; ++kt)
      for (int tap = 0; tap < 9; ++tap)
        for (int c = 0; c < d_.C; ++c)
          for (int kk = 0; kk < KT; ++kk) {
            const int k = kt * KT + kk;
            *dst++ = k < d_.K ? w[(int64_t(k) * d_.C + c) * 9 + tap] : 0.f;
          }
  }

  // uc[u * xi_stride + (kt - kt0) * C * KT + c * KT + kk] for kt in [kt0, kt1), the 36 matrices:
  // U00[a][b] = (G h G^T) with h the 2x2 taps {w[2][2] w[2][0]; w[0][2] w[0][0]} (offset -1 first),
  // U01[a] = G (w[2][1], w[0][1]), U10[b] = G (w[1][2], w[1][0]), U11 = w[1][1].
  void transform_weights(int kt0, int kt1, int64_t xi_stride, float* uc) const {
    const int64_t n = int64_t(d_.C) * KT;
    for (int kt = kt0; kt < kt1; ++kt) {
      const float* g = g9_.data() + int64_t(kt) * 9 * n;
      float* u = uc + int64_t(kt - kt0) * n;
      for (int64_t i = 0; i < n; i += VW) {
        const int left = int(std::min<int64_t>(VW, n - i));
        V w[3][3];
        for (int e = 0; e < 9; ++e)
          w[e / 3][e % 3] = left == VW ? S::load(g + e * n + i) : S::load_n(g + e * n + i, left);
        V out[NU];
        V r0[5], r1[5];  // G along x of the two-tap rows ky = 2 (offset -1) and ky = 0
        winograd_g5<S>(w[2][2], w[2][0], r0);
        winograd_g5<S>(w[0][2], w[0][0], r1);
        for (int b = 0; b < 5; ++b) {
          V col[5];
          winograd_g5<S>(r0[b], r1[b], col);
          for (int a = 0; a < 5; ++a) out[a * 5 + b] = col[a];
        }
        winograd_g5<S>(w[2][1], w[0][1], out + 25);
        winograd_g5<S>(w[1][2], w[1][0], out + 30);
        out[35] = w[1][1];
        for (int q = 0; q < NU; ++q) {
          float* dst = u + int64_t(q) * xi_stride + i;
          if (left == VW)
            S::store(dst, out[q]);
          else
            S::store_n(dst, out[q], left);
        }
      }
    }
  }

  // vb[xi][c][slot*VW + t] = the 81 transformed values of each tile's 5x5 patch, times in_scale.
  void input_transform(const ConvRun& r, const Geo& g, int n, int s0, int ns, float* vb) const {
    const int H = r.x.h, W = r.x.w, C = d_.C;
    const int ph = 4 * g.ty + 1, pw = 4 * g.tx + 1, rw = 4 * VW + 2 + VW;
    float* scratch = thread_scratch<float>(3, g.wide ? size_t(5) * rw : size_t(ph) * pw);
    for (int c = 0; c < C; ++c) {
      const float* xp = r.x.at(n, c);
      if (!g.wide)  // padded copy: pad[y][x] = x[y - 1][x - 1]
        for (int y = 0; y < ph; ++y) {
          const int sy = y - 1;
          fill_row(scratch + int64_t(y) * pw, sy >= 0 && sy < H ? xp + int64_t(sy) * W : nullptr, W, pw, 1, 0, 1,
                   1.f);
        }
      const bool scale = r.in_scale != nullptr;
      const V sc = S::set1(scale ? r.in_scale[int64_t(n) * C + c] : 1.f);
      float* dst = vb + int64_t(c) * LD;
      for (int sl = 0; sl < ns; ++sl, dst += VW) {
        V z[5][5];
        if (g.wide) {
          const float* rp[5];
          patch_rows(xp, H, W, (s0 + sl) / g.spr, ((s0 + sl) % g.spr) * VW, scratch, rw, rp);
          for (int i = 0; i < 5; ++i) {
            V e[6];
            P::extract6(rp[i], e);
            for (int j = 0; j < 5; ++j) z[i][j] = scale ? S::mul(e[j], sc) : e[j];
          }
        } else {
          alignas(64) float tmp[25][VW];
          gather_narrow(scratch, pw, g, s0 + sl, tmp);
          for (int i = 0; i < 5; ++i)
            for (int j = 0; j < 5; ++j) z[i][j] = scale ? S::mul(S::load(tmp[i * 5 + j]), sc) : S::load(tmp[i * 5 + j]);
        }
        transform_in(z, dst);
      }
    }
  }

  // Stores the 81 values of one slot: dst[xi * v_stride()].
  void transform_in(const V (&z)[5][5], float* dst) const {
    const int64_t xs = v_stride();
    V t[5][5];  // t[i][b] = (d B)[i][b]
    for (int i = 0; i < 5; ++i) winograd_bt5<S>(z[i], t[i]);
    for (int b = 0; b < 5; ++b) {  // phase (0,0): B^T over the columns of d B
      V col[5], o[5];
      for (int i = 0; i < 5; ++i) col[i] = t[i][b];
      winograd_bt5<S>(col, o);
      for (int a = 0; a < 5; ++a) S::store(dst + (X00 + a * 5 + b) * xs, o[a]);
    }
    for (int j = 0; j < 4; ++j) {  // phase (0,1): B^T over columns 0..3 of d
      V col[5], o[5];
      for (int i = 0; i < 5; ++i) col[i] = z[i][1 + j];
      winograd_bt5<S>(col, o);
      for (int a = 0; a < 5; ++a) S::store(dst + (X01 + a * 4 + j) * xs, o[a]);
    }
    for (int i = 0; i < 4; ++i)  // phase (1,0): rows 1..4 of d B
      for (int b = 0; b < 5; ++b) S::store(dst + (X10 + i * 5 + b) * xs, t[1 + i][b]);
    for (int i = 0; i < 4; ++i)  // phase (1,1): the centre 4x4 of d
      for (int j = 0; j < 4; ++j) S::store(dst + (X11 + i * 4 + j) * xs, z[1 + i][1 + j]);
  }

  // rp[i]: 4*VW + 2 floats holding x[4*ty - 1 + i][4*tx0 - 1 + j]: the input row itself, or a
  // zero-padded copy in `rows` at the borders.
  void patch_rows(const float* xp, int H, int W, int ty, int tx0, float* rows, int rw, const float* (&rp)[5]) const {
    const int r0 = 4 * ty - 1, c0 = 4 * tx0 - 1;
    const bool interior = r0 >= 0 && r0 + 4 < H && c0 >= 0 && c0 + 4 * VW + 1 < W;
    for (int i = 0; i < 5; ++i) {
      if (interior) {
        rp[i] = xp + int64_t(r0 + i) * W + c0;
      } else {
        float* row = rows + i * rw;
        const bool live = r0 + i >= 0 && r0 + i < H;
        fill_row(row, live ? xp + int64_t(r0 + i) * W : nullptr, W, 4 * VW + 2, 1, 0, -c0, 1.f);
        rp[i] = row;
      }
    }
  }

  // tmp[i*5 + j][t] = pad[4*ty + i][4*tx + j] of tile t of a narrow slot (VW raster tiles).
  static void gather_narrow(const float* pad, int pw, const Geo& g, int slot, float (&tmp)[25][VW]) {
    const int ntiles = g.ty * g.tx;
    for (int t = 0; t < VW; ++t) {
      const int tile = slot * VW + t;
      const int y0 = tile < ntiles ? 4 * (tile / g.tx) : 0, x0 = tile < ntiles ? 4 * (tile % g.tx) : 0;
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j) tmp[i * 5 + j][t] = pad[int64_t(y0 + i) * pw + x0 + j];
    }
  }

  struct Panels {
    const float* base;
    int64_t xi_stride;
    int first;
  };

  template <int NS>
  void gemm_n(const float* vb, int kt0, int kt1, int kbs, Panels u, float* m) const {
    static const int zero = 0;
    const int C = d_.C;
    for (int xi = 0; xi < NX; ++xi) {
      const float* ub = u.base + int64_t(u_index(xi)) * u.xi_stride;
      const float* vp = vb + int64_t(xi) * v_stride();
      for (int kt = kt0; kt < kt1; ++kt) {
        const float* up = ub + int64_t(kt - u.first) * C * KT;
        float* mp = m + (int64_t(xi) * kbs * KT + (kt - kt0) * KT) * LD;
        if constexpr (P::packed_gemm)
          P::template micro_packed<KT, NS>(up, vp, LD, C, mp, LD, false);
        else
          P::template micro<KT, NS>(up, vp, &zero, 1, 1, LD, C, mp, LD, false);
      }
    }
  }
  void gemm(const float* vb, int ns, int kt0, int kt1, int kbs, Panels u, float* m) const {
    static_assert(NV <= 4, "gemm dispatch covers NV <= 4");
    switch (ns) {
      case 1: return gemm_n<1>(vb, kt0, kt1, kbs, u, m);
      case 2: return gemm_n<(NV >= 2 ? 2 : 1)>(vb, kt0, kt1, kbs, u, m);
      case 3: return gemm_n<(NV >= 3 ? 3 : 1)>(vb, kt0, kt1, kbs, u, m);
      default: return gemm_n<NV>(vb, kt0, kt1, kbs, u, m);
    }
  }

  // o[py][px][i][j]: the 4x4 outputs of the four phases of one slot, epilogue applied.
  void output_transform(const ConvRun& r, const Geo& g, int n, int s0, int ns, int kb, int kbe, int kbs,
                        const float* m) const {
    const Epilogue& ep = r.ep;
    const V vslope = S::set1(ep.slope), vgain = S::set1(ep.gain);
    const int64_t xs = int64_t(kbs) * KT * LD;
    for (int k = kb * KT; k < std::min(d_.K, kbe * KT); ++k) {
      const V vos = S::set1(r.out_scale ? r.out_scale[int64_t(n) * d_.K + k] : 1.f);
      const V vb = S::set1(ep.bias ? ep.bias[k] : 0.f);
      auto finish = [&](V v) {
        v = S::mul(v, vos);
        if (ep.bias) v = S::add(v, vb);
        if (ep.slope != 1.f) v = S::lrelu(v, vslope);
        if (ep.gain != 1.f) v = S::mul(v, vgain);
        return v;
      };
      float* out = r.y.at(n, k);
      const float* mk = m + int64_t(k - kb * KT) * LD;
      for (int sl = 0; sl < ns; ++sl) {
        const float* ms = mk + sl * VW;
        auto M = [&](int xi) { return S::load(ms + xi * xs); };
        V o[2][2][4][4];
        {  // (0,0): A^T over columns, then over rows
          V at[4][5];
          for (int b = 0; b < 5; ++b) {
            V col[5], oc[4];
            for (int a = 0; a < 5; ++a) col[a] = M(X00 + a * 5 + b);
            winograd_at5<S>(col, oc);
            for (int i = 0; i < 4; ++i) at[i][b] = oc[i];
          }
          for (int i = 0; i < 4; ++i) winograd_at5<S>(at[i], o[0][0][i]);
        }
        for (int j = 0; j < 4; ++j) {  // (0,1): A^T over columns
          V col[5], oc[4];
          for (int a = 0; a < 5; ++a) col[a] = M(X01 + a * 4 + j);
          winograd_at5<S>(col, oc);
          for (int i = 0; i < 4; ++i) o[0][1][i][j] = oc[i];
        }
        for (int i = 0; i < 4; ++i) {  // (1,0): A^T over rows
          V row[5];
          for (int b = 0; b < 5; ++b) row[b] = M(X10 + i * 5 + b);
          winograd_at5<S>(row, o[1][0][i]);
        }
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) o[1][1][i][j] = M(X11 + i * 4 + j);
        for (int py = 0; py < 2; ++py)
          for (int px = 0; px < 2; ++px)
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j) o[py][px][i][j] = finish(o[py][px][i][j]);
        if (g.wide)
          write_wide(g, (s0 + sl) / g.spr, ((s0 + sl) % g.spr) * VW, o, out);
        else
          write_narrow(g, s0 + sl, o, out);
      }
    }
  }

  // Output row 2*(4*ty + i) + py holds phase (py, 0) at even and (py, 1) at odd columns: each
  // phase's 4 columns of VW tiles are interleaved into 4*VW floats, then the two phases into
  // 8*VW floats of the row (from column 8*tx0).
  static void write_wide(const Geo& g, int ty, int tx0, const V (&o)[2][2][4][4], float* out) {
    const int x0 = 8 * tx0;
    for (int py = 0; py < 2; ++py)
      for (int i = 0; i < 4; ++i) {
        const int oy = 2 * (4 * ty + i) + py;
        if (oy >= g.OH) continue;
        alignas(64) float e[4 * VW], od[4 * VW];
        P::interleave4(o[py][0][i], e, 4 * VW);
        P::interleave4(o[py][1][i], od, 4 * VW);
        float* row = out + int64_t(oy) * g.OW;
        for (int q = 0; q < 4 * VW && x0 + 2 * q < g.OW; q += VW)
          S::store_interleave2(row + x0 + 2 * q, S::load(e + q), S::load(od + q), std::min(2 * VW, g.OW - x0 - 2 * q));
      }
  }

  static void write_narrow(const Geo& g, int slot, const V (&o)[2][2][4][4], float* out) {
    alignas(64) float tmp[2][2][16][VW];
    for (int py = 0; py < 2; ++py)
      for (int px = 0; px < 2; ++px)
        for (int q = 0; q < 16; ++q) S::store(tmp[py][px][q], o[py][px][q / 4][q % 4]);
    const int ntiles = g.ty * g.tx;
    for (int t = 0; t < VW; ++t) {
      const int tile = slot * VW + t;
      if (tile >= ntiles) break;
      const int gy0 = 4 * (tile / g.tx), gx0 = 4 * (tile % g.tx);
      for (int py = 0; py < 2; ++py)
        for (int i = 0; i < 4; ++i) {
          const int oy = 2 * (gy0 + i) + py;
          if (oy >= g.OH) continue;
          float* row = out + int64_t(oy) * g.OW;
          for (int j = 0; j < 4; ++j)
            for (int px = 0; px < 2; ++px) {
              const int ox = 2 * (gx0 + j) + px;
              if (ox < g.OW) row[ox] = tmp[py][px][i * 4 + j][t];
            }
        }
    }
  }

  ConvDesc d_;
  int ktiles_;
  std::unique_ptr<ConvKernel> small_;
  bool per_run_;
  std::string name_;
  AlignedArray<float> u_;   // [36][ktiles][C][KT], transformed at load
  AlignedArray<float> g9_;  // [ktiles][9][C][KT], per_run_: transformed in every run
};
