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
//     phase (0,1): 5 x 4 = 20            Y = A^T [U .* (B^T d')]     (d' = columns 1..4 of d)
//     phase (1,0): 4 x 5 = 20            Y = [U .* (d'' B)] A        (d'' = rows 1..4)
//     phase (1,1): 4 x 4 = 16            Y = U .* d'''           (d''' = rows and columns 1..4)
// 81 multiplies per 64 outputs instead of 144 (1.78x fewer). The 81 products are 81 GEMMs
// M[xi][k][tile] = sum_c U[u(xi)][k][c] * V[xi][c][tile] over 36 distinct weight matrices
// (25 + 5 + 5 + 1: a one-tap axis reuses the same U for its 4 positions), run by the policy's
// micro-kernel exactly as in WinogradConv: vectors over tiles, wide maps through P::extract6
// (first 5 of the 6 columns), narrow ones gathered from a padded copy, output rows of both column
// phases interleaved into whole rows. Weights: U transformed at load, or kept as 3x3 weights and
// transformed per run, chunk by chunk, where U would pass 8 MiB (same rule as WinogradConv; by
// default conv.cpp uses this kernel only where U stays <= 4 MiB, so per run only when asked).
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
class WinogradConvT final : public WinogradBase<P, WinogradConvT<P>> {
  using Base = WinogradBase<P, WinogradConvT<P>>;
  friend Base;
  using typename Base::S;
  using typename Base::V;
  using typename Base::Geo;
  using Base::KT, Base::NV, Base::VW, Base::LD, Base::NU;
  using Base::d_, Base::name_, Base::g9_, Base::small_, Base::per_run_;
  using Base::v_stride;
  static constexpr int NX = 81;  // products per tile (see above)
  // First product of each phase: (0,0) 25 [a*5 + b], (0,1) 20 [a*4 + j], (1,0) 20 [i*5 + b], (1,1) 16.
  static constexpr int X00 = 0, X01 = 25, X10 = 45, X11 = 65;

 public:
  static bool supports(const ConvDesc& d) {
    return d.transposed && d.groups == 1 && d.kh == 3 && d.kw == 3 && d.stride == 2 && d.pad == 0 && d.C >= 1 &&
           d.K >= 1;
  }

  WinogradConvT(const ConvDesc& d, const float* w, std::unique_ptr<ConvKernel> small, bool weights_per_run)
      : Base(d, std::move(small), weights_per_run) {
    name_ = std::string(P::dtype) + "_convT3x3s2_winograd_f42_" + std::to_string(KT) + "x" + std::to_string(LD) +
            (per_run_ ? "_wt" : "") + "__" + P::isa;
    if (small_) name_ += "|" + small_->name();
    this->init_weights(w);
  }

 private:
  // Tiles of the (H+1) x (W+1) phase grid (phase 0 of each axis is one longer than phase 1).
  Geo geometry(int H, int W) const {
    return Base::make_geo(d_.out_h(H), d_.out_w(W), int(div_up(H + 1, 4)), int(div_up(W + 1, 4)));
  }

  // Which weight matrix product xi multiplies.
  static int u_index(int xi) {
    if (xi < X01) return xi;                      // (0,0): U[a][b]
    if (xi < X10) return 25 + (xi - X01) / 4;     // (0,1): U[a], 4 column positions
    if (xi < X11) return 30 + (xi - X10) % 5;     // (1,0): U[b], 4 row positions
    return 35;                                    // (1,1): the centre tap
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
          const int ty = (s0 + sl) / g.spr, tx0 = ((s0 + sl) % g.spr) * VW;
          Base::wide_rows(xp, H, W, 4 * ty - 1, 4 * tx0 - 1, scratch, rw, rp);  // rows/cols -1..3
          for (int i = 0; i < 5; ++i) {
            V e[6];
            P::extract6(rp[i], e);
            for (int j = 0; j < 5; ++j) z[i][j] = scale ? S::mul(e[j], sc) : e[j];
          }
        } else {
          alignas(64) float tmp[25][VW];
          Base::template gather_narrow<5>(scratch, pw, g, s0 + sl, tmp);
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

  // o[py][px][i][j]: the 4x4 outputs of the four phases of one slot, epilogue applied.
  void output_transform(const ConvRun& r, const Geo& g, int n, int s0, int ns, int kb, int kbe, int kbs,
                        const float* m) const {
    const Epilogue& ep = r.ep;
    const int64_t xs = int64_t(kbs) * KT * LD;
    for (int k = kb * KT; k < std::min(d_.K, kbe * KT); ++k) {
      const VecEpilogue<S> finish(r.out_scale ? r.out_scale[int64_t(n) * d_.K + k] : 1.f,
                                  ep.bias ? ep.bias + k : nullptr, ep.slope, ep.gain);
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

};
