// Winograd F(4x4, 3x3) convolution (3x3, stride 1, any pad <= 2), f32, templated on an element
// policy P like conv_direct_impl_internal.h, so that the AVX2 and AVX-512 files share it. (A bf16
// variant was tried and dropped: bf16 operands in the Winograd domain cost ~2.5% relative L2 error.)
// Include inside the per-ISA namespace after conv_direct_impl_internal.h.
//
// A 4x4 output tile costs 36 multiplies per (c, k) instead of 144: Y = A^T [U .* V] A with
// U = G g G^T (weights, transformed once at load) and V = B^T d B (6x6 input patch d).
// Layout: vectors run over TILES (W = 16 or 8 tiles per vector, a "slot"), so the 36 products are
// 36 independent GEMMs  M[xi][k][tile] = sum_c U[xi][k][c] * V[xi][c][tile]  that reuse the direct
// conv's register-blocked micro-kernel (KT output channels x NV slots), and both transforms are plain
// vector arithmetic. NCHW in and out, no global repacking:
//   * wide maps (tiles per row >= W): a slot is W consecutive tiles of one tile row; the 6 strided
//     columns {4t + j} are pulled out of 4W+2 contiguous input floats with P::extract6 (permutes),
//     and the 4x4 results are interleaved back with P::interleave4 into contiguous output rows;
//   * narrow maps: a slot is W consecutive tiles in raster order, gathered from a padded copy of the
//     (small) channel with scalar loads.
// The modulation in_scale multiplies V (it is linear), out_scale is applied in the epilogue.
// Weights: U (36 floats per (k, c), 4x the 3x3 weights) is either transformed once at load, or --
// where U would outweigh the layer's output map, the wide layers on small maps (GPEN-512: 16..64
// px, 226 MB of U) -- kept as the 3x3 weights and transformed in every run, one chunk of output
// channels at a time, into a per-thread buffer just before the GEMMs that read it (a chunk of
// U of ~1 MiB, written and read back from L2). Every block of tiles transforms
// again, so the dispatcher (conv.cpp) asks for this only where a sample's map is one block.
// (Tried: all of U transformed once per run into arena scratch, shared by the blocks -- the
// 75 MB write pass of a 1024->512 layer cost more than the 4 blocks of a 64x64 map saved.)
// Work item = (sample, block of NV slots = 64 tiles on AVX-512, group of output channels): the input
// transform of the block for all C (36 x C x 64 floats) once, then for chunks of output channels
// whose M (36 x chunk x 64 floats) fits L2: the 36 GEMMs, then the output transform + epilogue.
// (Tried and measured slower: C-chunked transforms accumulating M, L1 blocking of the reduction,
// sharing weight panels between blocks -- the extra M / V traffic outweighs what they save.)

template <class S>
inline void winograd_bt6(const typename S::V* z, typename S::V* out) {
  // Rows of B^T: [4 0 -5 0 1 0] [0 -4 -4 1 1 0] [0 4 -4 -1 1 0] [0 -2 -1 2 1 0] [0 2 -1 -2 1 0] [0 4 0 -5 0 1]
  const typename S::V four = S::set1(4.f), five = S::set1(5.f), two = S::set1(2.f);
  const typename S::V t0 = S::fnmadd(four, z[2], z[4]);  // z4 - 4 z2
  const typename S::V t1 = S::fnmadd(four, z[1], z[3]);  // z3 - 4 z1
  const typename S::V t2 = S::sub(z[4], z[2]);
  const typename S::V t3 = S::mul(two, S::sub(z[3], z[1]));
  out[0] = S::fmadd(four, z[0], S::fnmadd(five, z[2], z[4]));
  out[1] = S::add(t0, t1);
  out[2] = S::sub(t0, t1);
  out[3] = S::add(t2, t3);
  out[4] = S::sub(t2, t3);
  out[5] = S::fmadd(four, z[1], S::fnmadd(five, z[3], z[5]));
}

template <class S>
inline void winograd_at6(const typename S::V* m, typename S::V* o) {
  // Rows of A^T: [1 1 1 1 1 0] [0 1 -1 2 -2 0] [0 1 1 4 4 0] [0 1 -1 8 -8 1]
  const typename S::V a = S::add(m[1], m[2]), b = S::sub(m[1], m[2]), c = S::add(m[3], m[4]),
                      d = S::sub(m[3], m[4]);
  o[0] = S::add(S::add(m[0], a), c);
  o[1] = S::fmadd(S::set1(2.f), d, b);
  o[2] = S::fmadd(S::set1(4.f), c, a);
  o[3] = S::add(S::fmadd(S::set1(8.f), d, b), m[5]);
}

// What the Winograd kernels share (this F(4x4,3x3) one and the transposed F(4,2) one in
// conv_winograd_t_impl_internal.h): the blocking and threading of run(), the weights (36
// transformed matrices at load, or the 3x3 weights transformed per run a chunk at a time) and the
// GEMMs over the transformed input. Derived (CRTP) provides NX (products per tile), u_index(xi)
// (which of the 36 weight matrices product xi multiplies), geometry(H, W), transform_weights(kt0,
// kt1, xi_stride, dst) from g9_, input_transform(r, g, n, s0, ns, vb) and output_transform(r, g,
// n, s0, ns, kt0, kt1, kbs, m).
template <class P, class Derived>
class WinogradBase : public ConvKernel {
 protected:
  using S = typename P::S;
  using V = typename S::V;
  static constexpr int KT = P::KT, NV = P::NV, VW = P::W, LD = NV * VW;
  static constexpr int NU = 36;  // transformed weight matrices
  static_assert(P::CU == 1, "f32 only");

  // OH x OW output; ty x tx 4x4 tiles (of the output, or of a transposed conv's phase grid) in
  // slots of VW tiles: wide maps (tx >= VW) a slot per VW tiles of a tile row, narrow ones VW
  // consecutive raster tiles.
  struct Geo {
    int OH, OW, ty, tx, spr, slots;
    bool wide;
  };
  static Geo make_geo(int OH, int OW, int ty, int tx) {
    Geo g;
    g.OH = OH, g.OW = OW, g.ty = ty, g.tx = tx;
    g.wide = tx >= VW;
    g.spr = int(div_up(tx, VW));
    g.slots = g.wide ? ty * g.spr : int(div_up(int64_t(ty) * tx, VW));
    return g;
  }

  WinogradBase(const ConvDesc& d, std::unique_ptr<ConvKernel> small, bool weights_per_run)
      : d_(d), ktiles_(int(div_up(d.K, KT))), small_(std::move(small)), per_run_(weights_per_run) {}

  // Called by Derived's constructor (it needs Derived::transform_weights): keeps the 3x3 weights
  // (per run), or transforms them all once and drops them.
  void init_weights(const float* w) {
    pack_weights_3x3(w);
    if (per_run_) return;
    u_.resize(size_t(NU) * ktiles_ * d_.C * KT);
    self().transform_weights(0, ktiles_, int64_t(ktiles_) * d_.C * KT, u_.data());
    g9_ = AlignedArray<float>();
  }

 public:
  std::string name() const override { return name_; }

  // Only the direct fallback (maps of fewer tiles than one vector) copies its input.
  size_t scratch_bytes(int n, int h, int w) const override {
    const Geo g = self().geometry(h, w);
    return small_ && int64_t(g.ty) * g.tx < VW ? small_->scratch_bytes(n, h, w) : 0;
  }

  void run(const ConvRun& r) const override {
    const Geo g = self().geometry(r.x.h, r.x.w);
    if (g.OH <= 0 || g.OW <= 0 || r.x.n <= 0) return;  // empty output
    // Fewer tiles than one vector: the direct kernel is faster than a mostly empty GEMM.
    if (small_ && int64_t(g.ty) * g.tx < VW) return small_->run(r);
    constexpr int NX = Derived::NX;
    // The block's transformed input V (NX x C x LD, L2/L3 resident; each GEMM streams one NXth of
    // it, C x LD, from L2 while it sweeps that chunk's output channels) is computed once per item.
    // Output channels are processed in chunks whose M (NX x chunk x LD floats) stays in L2.
    // Items split the output channels further only when the blocks alone would leave threads idle
    // (each such item redoes the input transform).
    int kchunk = std::max(1, std::min(ktiles_, int(512 * 1024 / (NX * KT * LD * sizeof(float)))));
    // Per-run weights: a chunk of U (36 x chunk x C x KT floats) of at most ~1 MiB, so that it is
    // read back from L2 (measured on the 1024->512 layers: 8 MiB chunks cost twice as much).
    if (per_run_) kchunk = std::max(1, std::min(kchunk, int((1 << 20) / (NU * KT * d_.C * sizeof(float)))));
    const int threads = r.pool ? r.pool->size() : 1, N = r.x.n;
    const int blocks = int(div_up(g.slots, NV));
    // Fewest channel groups that keep the threads evenly busy (>= 85% of the last round used).
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
        self().input_transform(r, g, n, s0, ns, vb);
        for (int kc = kt0; kc < kt1; kc += kchunk) {
          const int kce = std::min(kt1, kc + kchunk);
          if (per_run_) {
            self().transform_weights(kc, kce, u_chunk_stride(kchunk), uc);
            gemm(vb, ns, kc, kce, kchunk, Panels{uc, u_chunk_stride(kchunk), kc}, m);
          } else {
            gemm(vb, ns, kc, kce, kchunk, Panels{u_.data(), int64_t(ktiles_) * d_.C * KT, 0}, m);
          }
          self().output_transform(r, g, n, s0, ns, kc, kce, kchunk, m);
        }
      }
    });
  }

 protected:
  const Derived& self() const { return static_cast<const Derived&>(*this); }

  // Floats from one xi's C x LD slice of vb to the next: one cache line more than the slice, so
  // that the stores of a tile's transform do not all land in one cache set (C x LD floats is a
  // multiple of 4 KiB for most C).
  int64_t v_stride() const { return int64_t(d_.C) * LD + 16; }
  // Floats between two weight matrices of a per-run chunk of U (kbs output-channel tiles): one
  // cache line more than the chunk, for the same reason (C x KT floats is a multiple of 4 KiB for
  // GPEN's 1024-channel inputs).
  int64_t u_chunk_stride(int kbs) const { return int64_t(kbs) * d_.C * KT + 16; }

  // g9_[kt][tap][c][KT], tap = 3 i + j, 0 beyond K: what transform_weights reads, so that it runs
  // over (c, kk) with vector f32 arithmetic (it is part of every start-up).
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

  // rp[i], i < R: 4*VW + 2 floats holding x[r0 + i][c0 + j], j < 4*VW + 2 (the R rows of a wide
  // slot's patches): the input row itself, or a zero-padded copy in `rows` at the borders.
  template <int R>
  static void wide_rows(const float* xp, int H, int W, int r0, int c0, float* rows, int rw, const float* (&rp)[R]) {
    const bool interior = r0 >= 0 && r0 + R - 1 < H && c0 >= 0 && c0 + 4 * VW + 1 < W;
    for (int i = 0; i < R; ++i) {
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

  // tmp[i*R + j][t] = pad[4*ty + i][4*tx + j], i, j < R, for tile t of a narrow slot (VW
  // consecutive raster tiles) of a padded copy of one channel.
  template <int R>
  static void gather_narrow(const float* pad, int pw, const Geo& g, int slot, float (&tmp)[R * R][VW]) {
    const int ntiles = g.ty * g.tx;
    for (int t = 0; t < VW; ++t) {
      const int tile = slot * VW + t;
      const int y0 = tile < ntiles ? 4 * (tile / g.tx) : 0, x0 = tile < ntiles ? 4 * (tile % g.tx) : 0;
      for (int i = 0; i < R; ++i)
        for (int j = 0; j < R; ++j) tmp[i * R + j][t] = pad[int64_t(y0 + i) * pw + x0 + j];
    }
  }

  // Where the U panels of a GEMM are: matrix u, output-channel tile kt (C x KT floats) at base +
  // u * xi_stride + (kt - first) * C * KT (u_ whole, or a per-run chunk of it).
  struct Panels {
    const float* base;
    int64_t xi_stride;
    int first;
  };

  // m[xi][kt - kt0][KT][LD] = U[u_index(xi)][kt] . vb[xi] over all channels, for NS slots. For one
  // xi the C x LD slice of vb stays in L2 while all the chunk's output-channel tiles sweep it.
  template <int NS>
  void gemm_n(const float* vb, int kt0, int kt1, int kbs, Panels u, float* m) const {
    static const int zero = 0;
    const int C = d_.C;
    for (int xi = 0; xi < Derived::NX; ++xi) {
      const float* ub = u.base + int64_t(Derived::u_index(xi)) * u.xi_stride;
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

  ConvDesc d_;
  int ktiles_;
  std::unique_ptr<ConvKernel> small_;
  bool per_run_;
  std::string name_;
  AlignedArray<float> u_;   // [36][ktiles][C][KT], transformed at load
  AlignedArray<float> g9_;  // [ktiles][9][C][KT], per_run_: transformed in every run
};

template <class P>
class WinogradConv final : public WinogradBase<P, WinogradConv<P>> {
  using Base = WinogradBase<P, WinogradConv<P>>;
  friend Base;
  using typename Base::S;
  using typename Base::V;
  using typename Base::Geo;
  using Base::KT, Base::NV, Base::VW, Base::LD;
  using Base::d_, Base::ktiles_, Base::name_, Base::g9_, Base::small_, Base::per_run_;
  using Base::v_stride;
  static constexpr int NX = 36;  // products per tile: the 6x6 transformed patch
  static int u_index(int xi) { return xi; }

 public:
  static bool supports(const ConvDesc& d) {
    return !d.transposed && d.groups == 1 && d.kh == 3 && d.kw == 3 && d.stride == 1 && d.pad >= 0 && d.pad <= 2 &&
           d.C >= 1 && d.K >= 1;
  }

  // weights_per_run: keep the 3x3 weights and transform them in every run (see above).
  WinogradConv(const ConvDesc& d, const float* w, std::unique_ptr<ConvKernel> small, bool weights_per_run)
      : Base(d, std::move(small), weights_per_run) {
    name_ = std::string(P::dtype) + "_conv3x3_winograd_f43_" + std::to_string(KT) + "x" + std::to_string(LD) +
            (per_run_ ? "_wt" : "") + "__" + P::isa;
    if (small_) name_ += "|" + small_->name();  // what runs on maps of fewer than W tiles
    this->init_weights(w);
  }

 private:
  Geo geometry(int H, int W) const {
    const int OH = d_.out_h(H), OW = d_.out_w(W);
    return Base::make_geo(OH, OW, int(div_up(OH, 4)), int(div_up(OW, 4)));
  }

  // out[a] = (G x)[a] for one column (or row) x of a 3x3 kernel, with F(4,3)'s
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
  // (f32: U differs from a double-precision transform by rounding only.)
  static void winograd_g6(const V* x, V* out) {
    const V sum02 = S::add(x[0], x[2]), q = S::mul(S::set1(1 / 12.f), x[1]);
    const V p = S::fmadd(S::set1(1 / 24.f), x[0], S::mul(S::set1(1 / 6.f), x[2]));
    out[0] = S::mul(S::set1(1 / 4.f), x[0]);
    out[1] = S::mul(S::set1(-1 / 6.f), S::add(sum02, x[1]));
    out[2] = S::mul(S::set1(-1 / 6.f), S::sub(sum02, x[1]));
    out[3] = S::add(p, q);
    out[4] = S::sub(p, q);
    out[5] = x[2];
  }

  // uc[xi * xi_stride + (kt - kt0) * C * KT + c * KT + kk] = (G g G^T)[xi] for kt in [kt0, kt1),
  // from g9_ (vector f32 arithmetic over (c, kk); U differs from a double-precision transform by
  // rounding only).
  void transform_weights(int kt0, int kt1, int64_t xi_stride, float* uc) const {
    const int64_t n = int64_t(d_.C) * KT;
    for (int kt = kt0; kt < kt1; ++kt) {
      const float* g = g9_.data() + int64_t(kt) * 9 * n;
      float* u = uc + int64_t(kt - kt0) * n;
      for (int64_t i = 0; i < n; i += VW) {
        const int left = int(std::min<int64_t>(VW, n - i));
        V tap[9], col[3], t[6][3];  // t[a][j] = (G g)[a][j]
        for (int e = 0; e < 9; ++e) tap[e] = left == VW ? S::load(g + e * n + i) : S::load_n(g + e * n + i, left);
        for (int j = 0; j < 3; ++j) {
          V a[6];
          col[0] = tap[j], col[1] = tap[3 + j], col[2] = tap[6 + j];
          winograd_g6(col, a);
          for (int r = 0; r < 6; ++r) t[r][j] = a[r];
        }
        for (int r = 0; r < 6; ++r) {
          V b[6];
          winograd_g6(t[r], b);
          for (int c = 0; c < 6; ++c) {
            float* dst = u + int64_t(r * 6 + c) * xi_stride + i;
            if (left == VW)
              S::store(dst, b[c]);
            else
              S::store_n(dst, b[c], left);
          }
        }
      }
    }
  }

  // vb[xi][c][slot*VW + t] = in_scale * (B^T d B)[xi] for the ns slots starting at s0.
  void input_transform(const ConvRun& r, const Geo& g, int n, int s0, int ns, float* vb) const {
    const int H = r.x.h, W = r.x.w, C = d_.C;
    const int ph = 4 * g.ty + 2, pw = 4 * g.tx + 2, rw = 4 * VW + 2 + VW;
    // Wide maps: 6 zero-padded rows for border slots. Narrow maps: padded copy of one channel.
    float* scratch = thread_scratch<float>(3, g.wide ? size_t(6) * rw : size_t(ph) * pw);
    for (int c = 0; c < C; ++c) {
      const float* xp = r.x.at(n, c);
      if (g.wide && c + 2 < C) prefetch_wide(r.x.at(n, c + 2), H, W, g, s0, ns);
      if (!g.wide)
        for (int y = 0; y < ph; ++y) {
          const int sy = y - d_.pad;
          fill_row(scratch + int64_t(y) * pw, sy >= 0 && sy < H ? xp + int64_t(sy) * W : nullptr, W, pw, 1, 0, d_.pad,
                   1.f);
        }
      const V sc = S::set1(r.in_scale ? r.in_scale[int64_t(n) * C + c] : 1.f);
      float* dst = vb + int64_t(c) * LD;
      for (int sl = 0; sl < ns; ++sl, dst += VW) {
        if (g.wide) {
          const float* rp[6];
          const int ty = (s0 + sl) / g.spr, tx0 = ((s0 + sl) % g.spr) * VW;
          Base::wide_rows(xp, H, W, 4 * ty - d_.pad, 4 * tx0 - d_.pad, scratch, rw, rp);
          transform_in([&](int i, V(&z)[6]) { P::extract6(rp[i], z); }, r.in_scale != nullptr, sc, dst);
        } else {
          alignas(64) float tmp[36][VW];
          Base::template gather_narrow<6>(scratch, pw, g, s0 + sl, tmp);
          transform_in([&](int i, V(&z)[6]) { for (int j = 0; j < 6; ++j) z[j] = S::load(tmp[i * 6 + j]); },
                       r.in_scale != nullptr, sc, dst);
        }
      }
    }
  }

  // The input rows of a block are short pieces of a big plane: prefetch those of a later channel
  // while this one is transformed (the hardware prefetchers do not follow this pattern).
  void prefetch_wide(const float* xp, int H, int W, const Geo& g, int s0, int ns) const {
    for (int sl = 0; sl < ns; ++sl) {
      const int ty = (s0 + sl) / g.spr, tx0 = ((s0 + sl) % g.spr) * VW;
      const int c0 = std::max(0, 4 * tx0 - d_.pad), c1 = std::min(W, 4 * tx0 - d_.pad + 4 * VW + 2);
      for (int i = 0; i < 6; ++i) {
        const int y = 4 * ty - d_.pad + i;
        if (y < 0 || y >= H || c1 <= c0) continue;
        const float* row = xp + int64_t(y) * W;
        for (int x = c0; x < c1; x += 16) _mm_prefetch(reinterpret_cast<const char*>(row + x), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(row + c1 - 1), _MM_HINT_T0);
      }
    }
  }

  // dst[xi * v_stride()] = scale * (B^T d B)[xi] for one slot of one channel, where row(i, z)
  // loads row i of the 6x6 patch d. Each row is transformed as it is loaded and each column
  // written to V as soon as it is done: 36 vectors live between the two passes, not 3 x 36 (the
  // patch, the row results and the outputs, mostly spilled). Measured on Zen 3 (AVX2): the input
  // transform 15-30 % faster, GPEN-512's Winograd layers ~9 % (docs/BENCHMARKS.md, session 15).
  template <class Row>
  void transform_in(Row row, bool scale, V sc, float* dst) const {
    V t[6][6];  // t[i][b] = (d B)[i][b]
    for (int i = 0; i < 6; ++i) {
      V z[6];
      row(i, z);
      winograd_bt6<S>(z, t[i]);
    }
    const int64_t xs = v_stride();
    for (int b = 0; b < 6; ++b) {
      V col[6], o[6];
      for (int i = 0; i < 6; ++i) col[i] = t[i][b];
      winograd_bt6<S>(col, o);
      for (int a = 0; a < 6; ++a) S::store(dst + (a * 6 + b) * xs, scale ? S::mul(o[a], sc) : o[a]);
    }
  }

  void output_transform(const ConvRun& r, const Geo& g, int n, int s0, int ns, int kb, int kbe, int kbs,
                        const float* m) const {
    const Epilogue& ep = r.ep;
    for (int k = kb * KT; k < std::min(d_.K, kbe * KT); ++k) {
      const VecEpilogue<S> finish(r.out_scale ? r.out_scale[int64_t(n) * d_.K + k] : 1.f,
                                  ep.bias ? ep.bias + k : nullptr, ep.slope, ep.gain);
      float* out = r.y.at(n, k);
      const float* mk = m + int64_t(k - kb * KT) * LD;
      for (int sl = 0; sl < ns; ++sl) {
        // Columns first (at[i][b] = (A^T M)[i][b]), then each output row is finished and written
        // as soon as it is transformed: 24 vectors live between the passes, not 24 + 16.
        V at[4][6];
        for (int b = 0; b < 6; ++b) {
          V col[6], oc[4];
          for (int a = 0; a < 6; ++a) col[a] = S::load(mk + int64_t(a * 6 + b) * kbs * KT * LD + sl * VW);
          winograd_at6<S>(col, oc);
          for (int i = 0; i < 4; ++i) at[i][b] = oc[i];
        }
        const int ty = (s0 + sl) / g.spr, tx0 = ((s0 + sl) % g.spr) * VW;
        alignas(64) float tmp[16][VW];  // narrow maps: the 16 outputs of each tile, scattered below
        for (int i = 0; i < 4; ++i) {
          V o[4];
          winograd_at6<S>(at[i], o);
          for (int j = 0; j < 4; ++j) o[j] = finish(o[j]);
          if (!g.wide)
            for (int j = 0; j < 4; ++j) S::store(tmp[i * 4 + j], o[j]);
          else if (4 * ty + i < g.OH)
            P::interleave4(o, out + int64_t(4 * ty + i) * g.OW + 4 * tx0, std::min(4 * VW, g.OW - 4 * tx0));
        }
        if (!g.wide) {
          const int ntiles = g.ty * g.tx;
          for (int t = 0; t < VW; ++t) {
            const int tile = (s0 + sl) * VW + t;
            if (tile >= ntiles) break;
            const int y0 = 4 * (tile / g.tx), x0 = 4 * (tile % g.tx);
            for (int i = 0; i < 4 && y0 + i < g.OH; ++i)
              for (int j = 0; j < 4 && x0 + j < g.OW; ++j) out[int64_t(y0 + i) * g.OW + x0 + j] = tmp[i * 4 + j][t];
          }
        }
      }
    }
  }

};
