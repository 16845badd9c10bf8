// The photo row kernels (photo_rows.h), included inside one namespace per ISA unit after
// <algorithm>, <cmath>, <cstdint>, <cstring>, core/rounding.h and kernels/cpu/photo_colour.h.

// img * (1 - w) + face * w, rounded half to even, where w > 0: GPEN's composite, whose img * 1 +
// face * 0 == img exactly, and which never takes a face pixel whose mask is not above 0
// (bicubic masks can dip below 0). RGB rows are blended as a flat run of bytes, with each
// pixel's weight repeated per channel, so that every loop reads and writes contiguously and
// vectorises; RGBA rows pixel by pixel.
template <int C>
void blend_row(uint8_t* out, const float* m, const uint8_t* face, int width) {
  if (C == 3) {
    constexpr int B = 64;
    float w3[3 * B];
    for (int x0 = 0; x0 < width; x0 += B) {
      const int n = std::min(B, width - x0);
      for (int i = 0; i < n; ++i) w3[3 * i] = w3[3 * i + 1] = w3[3 * i + 2] = m[x0 + i];
      uint8_t* o = out + size_t(x0) * 3;
      const uint8_t* f = face + size_t(x0) * 3;
      for (int j = 0; j < 3 * n; ++j) {
        const float w = w3[j], v = float(o[j]) * (1.f - w) + float(f[j]) * w;
        o[j] = w > 0.f ? saturate_round_u8(std::fabs(v)) : o[j];
      }
    }
    return;
  }
  for (int i = 0; i < width; ++i) {
    const float w = m[i];
    if (!(w > 0.f)) continue;
    for (int c = 0; c < 3; ++c) {
      uint8_t& o = out[size_t(i) * C + c];
      o = saturate_round_u8(std::fabs(float(o) * (1.f - w) + float(face[size_t(i) * 3 + c]) * w));
    }
  }
}

// Skin protection of one row, in blocks of B pixels: gathered into planar float lanes, the
// colour arithmetic on whole lanes in straight-line code (vectorised; whether a pixel changes is
// a select), then written back. C = 3 or 4 (alpha untouched).
template <int C>
void protect_skin_row(uint8_t* p, const uint8_t* o, int width, bool mono) {
  using namespace photo_colour;
  constexpr int B = 32;
  float pr[B], pg[B], pb[B], orr[B], og[B], ob[B];
  int32_t nr[B], ng[B], nb[B];  // 32-bit lanes like the floats: one vector width for the loop
  for (int x0 = 0; x0 < width; x0 += B) {
    const int n = std::min(B, width - x0);
    // A block paste-back left alone (outside the faces' masks) keeps its bytes: skip the work.
    if (C == 3 && std::memcmp(p + size_t(x0) * 3, o + size_t(x0) * 3, size_t(n) * 3) == 0) continue;
    for (int i = 0; i < B; ++i) {
      const int x = x0 + (i < n ? i : 0);  // the tail repeats the first pixel; never written
      pr[i] = p[size_t(x) * C], pg[i] = p[size_t(x) * C + 1], pb[i] = p[size_t(x) * C + 2];
      orr[i] = o[size_t(x) * 3], og[i] = o[size_t(x) * 3 + 1], ob[i] = o[size_t(x) * 3 + 2];
    }
    for (int i = 0; i < B; ++i) {
      const float cb_o = cb_of(orr[i], og[i], ob[i]), cr_o = cr_of(orr[i], og[i], ob[i]);
      const float k = mono ? 1.f : skin_weight_of(cb_o, cr_o);
      float r, g, b;
      moved_chroma(pr[i], pg[i], pb[i], cb_of(pr[i], pg[i], pb[i]), cr_of(pr[i], pg[i], pb[i]), cb_o, cr_o, k, &r, &g,
                   &b);
      // Untouched pixels already have the original's colour, and must keep its bytes.
      const int32_t write = !(pr[i] == orr[i] && pg[i] == og[i] && pb[i] == ob[i]) && k > 0.f;
      nr[i] = write ? saturate_round_u8(r) : int32_t(pr[i]);
      ng[i] = write ? saturate_round_u8(g) : int32_t(pg[i]);
      nb[i] = write ? saturate_round_u8(b) : int32_t(pb[i]);
    }
    for (int i = 0; i < n; ++i) {
      uint8_t* q = p + size_t(x0 + i) * C;
      q[0] = uint8_t(nr[i]), q[1] = uint8_t(ng[i]), q[2] = uint8_t(nb[i]);
    }
  }
}

// out = a * alpha + (b * beta): b * beta in float, a * alpha (exact in double) added in double,
// then rounded once to float and to uint8 (photo_rows.h).
inline void add_weighted_row(const uint8_t* a, const uint8_t* b, float alpha, float beta, uint8_t* out, size_t n) {
  const double alpha_d = alpha;
  for (size_t i = 0; i < n; ++i) {
    const float bb = float(b[i]) * beta;
    out[i] = saturate_round_u8(float(double(a[i]) * alpha_d + double(bb)));
  }
}

// One RGB row into three float planes, each minus its mean (exact: small integers in float).
inline void rgb_to_planes_row(const uint8_t* rgb, int width, const float* mean, float* r, float* g, float* b) {
  const float mr = mean[0], mg = mean[1], mb = mean[2];
  for (int x = 0; x < width; ++x) {
    r[x] = float(rgb[3 * x]) - mr;
    g[x] = float(rgb[3 * x + 1]) - mg;
    b[x] = float(rgb[3 * x + 2]) - mb;
  }
}

inline PhotoRowKernels photo_row_kernel_table(const char* name) {
  return PhotoRowKernels{name,           blend_row<3>,     blend_row<4>, protect_skin_row<3>, protect_skin_row<4>,
                         add_weighted_row, rgb_to_planes_row};
}
