// HEIF (HEIC: HEVC, as iPhones save photos) and AVIF (AV1) through libheif, read only. The
// primary image is decoded to 8-bit interleaved RGB(A) with the file's rotation, mirroring and
// crop applied (the HEIF spec makes those authoritative; the EXIF orientation of a HEIF file
// is ignored, and our EXIF copy is written back with Orientation 1 anyway). The size is checked
// against DecodeLimits from the image handle (parsed boxes, no pixels yet) before decoding. Metadata: the embedded ICC profile ("prof"/"rICC"; an nclx colour
// description has no ICC form and is not carried), the first "Exif" block and the XMP item.
//
// Without libheif at configure time (GPEN_HAVE_LIBHEIF unset) the format is still recognised,
// and decoding says the build cannot read it.
#include "core/error.h"
#include "core/image_codecs_internal.h"
#include "core/image_metadata.h"

#ifdef GPEN_HAVE_LIBHEIF
#include <libheif/heif.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#endif

namespace gpen {

#ifdef GPEN_HAVE_LIBHEIF
bool heif_supported() { return true; }
#else
bool heif_supported() { return false; }
#endif

namespace detail {

#ifndef GPEN_HAVE_LIBHEIF

ImageInfo probe_heif(const uint8_t*, size_t) { fail("HEIF/AVIF: this build of gpen cannot read it (built without libheif)"); }
Image decode_heif(const uint8_t*, size_t, const DecodeLimits&) {
  fail("HEIF/AVIF: this build of gpen cannot read it (built without libheif)");
}

#else

namespace {

using ContextPtr = std::unique_ptr<heif_context, void (*)(heif_context*)>;
using HandlePtr = std::unique_ptr<const heif_image_handle, void (*)(const heif_image_handle*)>;
using ImagePtr = std::unique_ptr<const heif_image, void (*)(const heif_image*)>;

// libheif's messages can end in, or hold, line breaks; ours are one line.
std::string one_line(const char* message) {
  std::string s = message && *message ? message : "no reason given";
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

void check(const heif_error& e, const char* what) {
  if (e.code != heif_error_Ok) fail("HEIF/AVIF: ", what, " (", one_line(e.message), ")");
}

// The context reads the caller's bytes in place: they outlive it (decode returns before them).
struct OpenFile {
  ContextPtr ctx{nullptr, heif_context_free};
  HandlePtr handle{nullptr, heif_image_handle_release};
};

OpenFile open_primary(const uint8_t* data, size_t size) {
  static std::once_flag init;
  std::call_once(init, [] { heif_init(nullptr); });  // plugins, once per process; never undone
  OpenFile f;
  f.ctx.reset(heif_context_alloc());
  if (!f.ctx) fail("HEIF/AVIF: out of memory");
  check(heif_context_read_from_memory_without_copy(f.ctx.get(), data, size, nullptr), "corrupt or truncated file");
  heif_image_handle* h = nullptr;
  check(heif_context_get_primary_image_handle(f.ctx.get(), &h), "no primary image");
  f.handle.reset(h);
  return f;
}

// XMP is a "mime" item of content type application/rdf+xml.
void read_xmp(const heif_image_handle* h, ImageMetadata& meta) {
  heif_item_id ids[8];
  const int n = heif_image_handle_get_list_of_metadata_block_IDs(h, "mime", ids, 8);
  for (int i = 0; i < n; ++i) {
    const char* type = heif_image_handle_get_metadata_content_type(h, ids[i]);
    if (!type || std::strcmp(type, "application/rdf+xml") != 0) continue;
    std::string xmp(heif_image_handle_get_metadata_size(h, ids[i]), '\0');
    if (!xmp.empty() && heif_image_handle_get_metadata(h, ids[i], xmp.data()).code == heif_error_Ok)
      meta.xmp = std::move(xmp);
    return;
  }
}

void read_metadata(const heif_image_handle* h, ImageMetadata& meta) {
  const heif_color_profile_type type = heif_image_handle_get_color_profile_type(h);
  if (type == heif_color_profile_type_prof || type == heif_color_profile_type_rICC) {
    std::vector<uint8_t> icc(heif_image_handle_get_raw_color_profile_size(h));
    if (!icc.empty() && heif_image_handle_get_raw_color_profile(h, icc.data()).code == heif_error_Ok)
      meta.icc = std::move(icc);
  }
  read_xmp(h, meta);
  heif_item_id id = 0;
  if (heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1) != 1) return;
  std::vector<uint8_t> block(heif_image_handle_get_metadata_size(h, id));
  if (block.size() < 4 || heif_image_handle_get_metadata(h, id, block.data()).code != heif_error_Ok) return;
  // The block starts with the big-endian offset of the TIFF header after those four bytes.
  const uint32_t skip = uint32_t(block[0]) << 24 | uint32_t(block[1]) << 16 | uint32_t(block[2]) << 8 | block[3];
  if (skip > block.size() - 4) return;
  meta.exif = exif_without_prefix(block.data() + 4 + skip, block.size() - 4 - skip);
}

}  // namespace

ImageInfo probe_heif(const uint8_t* data, size_t size) {
  OpenFile f = open_primary(data, size);
  ImageInfo info;
  info.format = ImageFormat::Heif;
  info.width = heif_image_handle_get_width(f.handle.get());
  info.height = heif_image_handle_get_height(f.handle.get());
  return info;
}

Image decode_heif(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  OpenFile f = open_primary(data, size);
  const heif_image_handle* h = f.handle.get();
  check_limits(ImageFormat::Heif, heif_image_handle_get_width(h), heif_image_handle_get_height(h), limits);
  const bool alpha = heif_image_handle_has_alpha_channel(h) != 0;
  std::unique_ptr<heif_decoding_options, void (*)(heif_decoding_options*)> options(heif_decoding_options_alloc(),
                                                                                   heif_decoding_options_free);
  if (!options) fail("HEIF/AVIF: out of memory");
  options->convert_hdr_to_8bit = 1;
  heif_image* decoded = nullptr;
  check(heif_decode_image(h, &decoded, heif_colorspace_RGB,
                          alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, options.get()),
        "cannot decode the image");
  ImagePtr img(decoded, heif_image_release);
  const int w = heif_image_get_width(decoded, heif_channel_interleaved);
  const int hh = heif_image_get_height(decoded, heif_channel_interleaved);
  check_limits(ImageFormat::Heif, w, hh, limits);  // after rotation and crop
  int stride = 0;
  const uint8_t* plane = heif_image_get_plane_readonly(decoded, heif_channel_interleaved, &stride);
  const int channels = alpha ? 4 : 3;
  if (!plane || stride < w * channels) fail("HEIF/AVIF: the decoder returned no 8-bit RGB image");
  Image out(w, hh, channels);
  for (int y = 0; y < hh; ++y) std::memcpy(out.row(y), plane + size_t(y) * size_t(stride), out.row_bytes());
  read_metadata(h, out.meta);
  return out;
}

#endif  // GPEN_HAVE_LIBHEIF

}  // namespace detail
}  // namespace gpen
