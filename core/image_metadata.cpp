#include "core/image_metadata.h"

#include <cstring>

namespace gpen {

namespace {

constexpr uint16_t kTagOrientation = 0x0112;
constexpr uint16_t kTagExifIfd = 0x8769;
constexpr uint16_t kTagPixelXDimension = 0xA002;
constexpr uint16_t kTagPixelYDimension = 0xA003;
constexpr uint16_t kTypeShort = 3, kTypeLong = 4;

// A bounds-checked view of a TIFF-structured block in either byte order.
class TiffView {
 public:
  TiffView(uint8_t* data, size_t size) : d_(data), n_(size) {
    if (n_ < 8) return;
    little_ = d_[0] == 'I' && d_[1] == 'I';
    ok_ = (little_ || (d_[0] == 'M' && d_[1] == 'M')) && u16(2) == 42;
  }
  bool ok() const { return ok_; }
  bool fits(size_t at, size_t bytes) const { return at <= n_ && n_ - at >= bytes; }

  uint32_t u16(size_t at) const {
    return little_ ? uint32_t(d_[at] | d_[at + 1] << 8) : uint32_t(d_[at] << 8 | d_[at + 1]);
  }
  uint32_t u32(size_t at) const {
    const uint32_t a = d_[at], b = d_[at + 1], c = d_[at + 2], e = d_[at + 3];
    return little_ ? a | b << 8 | c << 16 | e << 24 : a << 24 | b << 16 | c << 8 | e;
  }
  void put16(size_t at, uint32_t v) {
    d_[at + (little_ ? 0 : 1)] = uint8_t(v);
    d_[at + (little_ ? 1 : 0)] = uint8_t(v >> 8);
  }
  void put32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) d_[at + size_t(little_ ? i : 3 - i)] = uint8_t(v >> (8 * i));
  }

  // The IFD at `offset`: its entry count, or -1 when its entries and next pointer do not fit.
  int entries(size_t offset) const {
    if (!fits(offset, 2)) return -1;
    const size_t count = u16(offset);
    return fits(offset + 2, 12 * count + 4) ? int(count) : -1;
  }
  // The position of the entry for `tag` in the IFD at `offset` (count checked), or 0.
  size_t find(size_t offset, int count, uint16_t tag) const {
    for (int i = 0; i < count; ++i) {
      const size_t entry = offset + 2 + 12 * size_t(i);
      if (u16(entry) == tag) return entry;
    }
    return 0;
  }
  // A one-value SHORT or LONG entry's value (stored inline); -1 for other types or counts.
  int64_t scalar(size_t entry) const {
    if (u32(entry + 4) != 1) return -1;
    const uint32_t type = u16(entry + 2);
    return type == kTypeShort ? int64_t(u16(entry + 8)) : type == kTypeLong ? int64_t(u32(entry + 8)) : -1;
  }
  void set_scalar(size_t entry, uint32_t value) {
    if (u32(entry + 4) != 1) return;
    const uint32_t type = u16(entry + 2);
    if (type == kTypeShort && value <= 0xFFFF) put16(entry + 8, value);
    else if (type == kTypeLong) put32(entry + 8, value);
  }

 private:
  uint8_t* d_;
  size_t n_;
  bool little_ = false, ok_ = false;
};

}  // namespace

int exif_orientation(const uint8_t* tiff, size_t size) {
  TiffView t(const_cast<uint8_t*>(tiff), size);  // only read
  if (!t.ok()) return 1;
  const size_t ifd0 = t.u32(4);
  const int count = t.entries(ifd0);
  if (count < 0) return 1;
  const size_t entry = t.find(ifd0, count, kTagOrientation);
  const int64_t value = entry ? t.scalar(entry) : 1;
  return value >= 1 && value <= 8 ? int(value) : 1;
}

std::vector<uint8_t> exif_for_output(const std::vector<uint8_t>& exif, int width, int height) {
  std::vector<uint8_t> out = exif;
  TiffView t(out.data(), out.size());
  if (!t.ok()) return {};
  const size_t ifd0 = t.u32(4);
  const int count = t.entries(ifd0);
  if (count < 0) return {};
  if (const size_t e = t.find(ifd0, count, kTagOrientation)) t.set_scalar(e, 1);
  t.put32(ifd0 + 2 + 12 * size_t(count), 0);  // no IFD1: the thumbnail is of the unrestored photo
  if (const size_t e = t.find(ifd0, count, kTagExifIfd); e && t.scalar(e) > 0) {
    const size_t sub = size_t(t.scalar(e));
    const int sub_count = t.entries(sub);
    if (sub_count >= 0) {
      if (const size_t x = t.find(sub, sub_count, kTagPixelXDimension)) t.set_scalar(x, uint32_t(width));
      if (const size_t y = t.find(sub, sub_count, kTagPixelYDimension)) t.set_scalar(y, uint32_t(height));
    }
  }
  return out;
}

ImageMetadata resampled_metadata(ImageMetadata meta, int from_width, int to_width) {
  if (from_width > 0 && to_width > 0 && from_width != to_width) {
    const double factor = double(to_width) / double(from_width);
    meta.dpi_x *= factor;
    meta.dpi_y *= factor;
  }
  return meta;
}

std::string xmp_for_output(std::string xmp) {
  static const std::string kName = "tiff:Orientation";
  for (size_t at = xmp.find(kName); at != std::string::npos; at = xmp.find(kName, at + kName.size())) {
    size_t p = at + kName.size();
    while (p < xmp.size() && (xmp[p] == ' ' || xmp[p] == '\t' || xmp[p] == '\n' || xmp[p] == '\r')) ++p;
    if (p < xmp.size() && (xmp[p] == '=' || xmp[p] == '>')) {  // attribute or element, not the closing tag
      ++p;
      while (p < xmp.size() && (xmp[p] == ' ' || xmp[p] == '"' || xmp[p] == '\'')) ++p;
      if (p < xmp.size() && xmp[p] >= '1' && xmp[p] <= '8') xmp[p] = '1';
    }
  }
  return xmp;
}

std::vector<uint8_t> exif_without_prefix(const uint8_t* data, size_t size) {
  if (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) return {data + 6, data + size};
  return {data, data + size};
}

}  // namespace gpen
