#include "mpq/data/image.h"

// clang-format off
#include <cstdio>   // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
// clang-format on
#include <csetjmp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>

#include "mpq/util/error.h"

namespace mpq::data {

const char* color_mode_name(ColorMode c) {
  return c == ColorMode::kRgb ? "rgb" : "gray";
}

const char* interpolation_name(Interpolation i) {
  return i == Interpolation::kBilinear ? "bilinear" : "bicubic";
}

namespace {

// --- decoding ---------------------------------------------------------------------------------

// PIL's ITU-R 601-2 luma in 16.16 fixed point (Convert.c, L24).
inline uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

// PIL's cmyk2rgb (Convert.c): MULDIV255 of the complemented ink.
inline uint8_t muldiv255(unsigned a, unsigned b) {
  unsigned t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}
inline uint8_t clip_ink(int v) {
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Converts interleaved RGB rows to the requested mode in place (gray: one channel).
Image finish_rgb(Image rgb, ColorMode mode) {
  if (mode == ColorMode::kRgb || rgb.channels == 1) {
    if (mode == ColorMode::kRgb && rgb.channels == 1) {  // PIL's L -> RGB: replication
      Image out{rgb.width, rgb.height, 3, {}};
      out.pixels.resize(rgb.pixels.size() * 3);
      for (size_t i = 0; i < rgb.pixels.size(); ++i)
        out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = rgb.pixels[i];
      return out;
    }
    return rgb;
  }
  Image out{rgb.width, rgb.height, 1, {}};
  size_t n = static_cast<size_t>(rgb.width) * static_cast<size_t>(rgb.height);
  out.pixels.resize(n);
  for (size_t i = 0; i < n; ++i)
    out.pixels[i] = luma(rgb.pixels[3 * i], rgb.pixels[3 * i + 1], rgb.pixels[3 * i + 2]);
  return out;
}

struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
  bool truncated = false;
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings are ignored as PIL ignores them, except premature end of data: PIL refuses truncated
// files ("image file is truncated") unless told otherwise.
void jpeg_note(j_common_ptr cinfo, int level) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = true;
}

// The libjpeg part, kept free of C++ objects with destructors: a longjmp out of libjpeg must not
// skip any. Decodes into `raw` (components per pixel as in the file, CMYK for CMYK/YCCK files).
// Returns false with err->message set on failure.
bool jpeg_decode_raw(const std::string& bytes, JpegErrors* err, std::vector<uint8_t>* raw,
                     int* width, int* height, int* components, bool* cmyk) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = jpeg_fail;
  err->pub.emit_message = jpeg_note;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  *components = cinfo.num_components;
  *cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  if (*components != 1 && *components != 3 && *components != 4) {
    std::snprintf(err->message, sizeof err->message, "%d components (PIL reads 1, 3 or 4)",
                  *components);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  // PIL's settings: ISLOW DCT, fancy upsampling, full scale.
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  cinfo.out_color_space = *cmyk ? JCS_CMYK : *components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *width = static_cast<int>(cinfo.output_width);
  *height = static_cast<int>(cinfo.output_height);
  *components = cinfo.output_components;
  const size_t stride = static_cast<size_t>(*width) * static_cast<size_t>(*components);
  raw->resize(stride * static_cast<size_t>(*height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[1] = {raw->data() + static_cast<size_t>(cinfo.output_scanline) * stride};
    jpeg_read_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

Image decode_jpeg(const std::string& bytes, const std::string& name, ColorMode mode) {
  JpegErrors err;
  Image img;
  int components = 0;
  bool cmyk = false;
  if (!jpeg_decode_raw(bytes, &err, &img.pixels, &img.width, &img.height, &components, &cmyk))
    throw InputError(name + ": not a decodable JPEG file (" + err.message + ")");
  if (err.truncated)
    throw InputError(name + ": truncated JPEG file (premature end of data; PIL refuses it too)");
  img.channels = components;
  if (cmyk) {
    // PIL opens CMYK JPEGs with rawmode "CMYK;I" (Adobe's inverted inks), then cmyk2rgb.
    const size_t n = static_cast<size_t>(img.width) * static_cast<size_t>(img.height);
    std::vector<uint8_t> rgb(n * 3);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = img.pixels.data() + 4 * i;
      const int nk = p[3];  // 255 - inverted K
      for (int c = 0; c < 3; ++c)
        rgb[3 * i + c] =
            clip_ink(nk - muldiv255(255u - p[c], static_cast<unsigned>(nk)));
    }
    img.pixels = std::move(rgb);
    img.channels = 3;
  }
  return finish_rgb(std::move(img), mode);
}

// --- PNG through libpng: PIL's convert("RGB") semantics, and no warnings on stderr -----------

struct PngReader {
  const std::string* bytes;
  size_t offset;
  char message[256];
};

void png_fail(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

void png_quiet(png_structp, png_const_charp) {}  // PIL ignores ancillary-chunk warnings too

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->offset + n > r->bytes->size()) png_error(png, "truncated PNG file");
  std::memcpy(out, r->bytes->data() + r->offset, n);
  r->offset += n;
}

// libpng part, free of C++ objects with destructors across the setjmp (as jpeg_decode_raw).
// Decodes to 8-bit RGB: palettes expanded, gray replicated, alpha dropped, 16-bit reduced to the
// high byte (PIL's "RGB;16B" unpacker), low bit depths expanded; no gamma or colour management.
bool png_decode_rgb(PngReader* r, std::vector<uint8_t>* rgb, std::vector<png_bytep>* rows,
                    int* width, int* height) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_fail, png_quiet);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    return false;
  }
  png_set_read_fn(png, r, png_read_bytes);
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *width = static_cast<int>(png_get_image_width(png, info));
  *height = static_cast<int>(png_get_image_height(png, info));
  if (png_get_rowbytes(png, info) != static_cast<size_t>(*width) * 3) {
    std::snprintf(r->message, sizeof r->message, "unsupported PNG pixel format");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  rgb->resize(static_cast<size_t>(*width) * static_cast<size_t>(*height) * 3);
  rows->resize(static_cast<size_t>(*height));
  for (int y = 0; y < *height; ++y)
    (*rows)[static_cast<size_t>(y)] = rgb->data() + static_cast<size_t>(y) * *width * 3;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

Image decode_png(const std::string& bytes, const std::string& name, ColorMode mode) {
  PngReader r{&bytes, 0, {0}};
  Image img;
  img.channels = 3;
  std::vector<png_bytep> rows;
  if (!png_decode_rgb(&r, &img.pixels, &rows, &img.width, &img.height))
    throw InputError(name + ": not a decodable PNG file (" + r.message + ")");
  return finish_rgb(std::move(img), mode);
}

Image decode_other(const std::string& bytes, const std::string& name, ColorMode mode) {
  static const bool silenced = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return true;
  }();
  (void)silenced;
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(buf, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw InputError(name + ": not a decodable image (" + e.msg + ")");
  }
  if (bgr.empty() || bgr.type() != CV_8UC3)
    throw InputError(name + ": not an image file (neither JPEG nor a format OpenCV decodes)");
  Image img{bgr.cols, bgr.rows, 3, {}};
  img.pixels.resize(static_cast<size_t>(bgr.cols) * static_cast<size_t>(bgr.rows) * 3);
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* s = bgr.ptr<uint8_t>(y);
    uint8_t* d = img.pixels.data() + static_cast<size_t>(y) * static_cast<size_t>(bgr.cols) * 3;
    for (int x = 0; x < bgr.cols; ++x) {
      d[3 * x] = s[3 * x + 2];
      d[3 * x + 1] = s[3 * x + 1];
      d[3 * x + 2] = s[3 * x];
    }
  }
  return finish_rgb(std::move(img), mode);
}

// --- Pillow's resampling ----------------------------------------------------------------------

constexpr int kPrecisionBits = 32 - 8 - 2;  // Resample.c: PRECISION_BITS

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed-point taps of one pass: output index o reads `count[o]` inputs from `first[o]`.
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;  // [out, ksize]
};

Taps precompute_taps(int in_size, int out_size, Interpolation f) {
  const double base_support = f == Interpolation::kBilinear ? 1.0 : 2.0;
  // Pillow computes the box width in float (box coordinates are floats): exact for our sizes.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = base_support * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<size_t>(out_size));
  t.count.resize(static_cast<size_t>(out_size));
  t.k.assign(static_cast<size_t>(out_size) * static_cast<size_t>(t.ksize), 0);
  std::vector<double> w(static_cast<size_t>(t.ksize));
  const double ss = 1.0 / filterscale;
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    int lo = static_cast<int>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int n = hi - lo;
    double sum = 0.0;
    for (int x = 0; x < n; ++x) {
      const double v = f == Interpolation::kBilinear
                           ? bilinear_filter((x + lo - center + 0.5) * ss)
                           : bicubic_filter((x + lo - center + 0.5) * ss);
      w[static_cast<size_t>(x)] = v;
      sum += v;
    }
    int32_t* k = t.k.data() + static_cast<size_t>(o) * static_cast<size_t>(t.ksize);
    for (int x = 0; x < n; ++x) {
      double v = w[static_cast<size_t>(x)];
      if (sum != 0.0) v /= sum;
      // normalize_coeffs_8bpc: round half away from zero.
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    t.first[static_cast<size_t>(o)] = lo;
    t.count[static_cast<size_t>(o)] = n;
  }
  return t;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift, as Pillow's lookup table index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// torchvision center_crop offsets (pad first when the crop is larger). `offset` is where the
// crop starts in the (unpadded) image's coordinates; negative means zero padding before.
int crop_offset(int size, int crop) {
  int pad_before = 0, padded = size;
  if (crop > size) {
    pad_before = (crop - size) / 2;
    padded = size + pad_before + (crop - size + 1) / 2;
  }
  // Python: int(round((padded - crop) / 2.0)), round half to even.
  const int start = static_cast<int>(std::nearbyint((padded - crop) / 2.0));
  return start - pad_before;
}

}  // namespace

Image decode_image(const std::string& bytes, const std::string& name, ColorMode mode) {
  if (bytes.empty()) throw InputError(name + ": empty file (0 bytes), not an image");
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
    return decode_jpeg(bytes, name, mode);
  if (bytes.size() >= 8 && png_sig_cmp(b, 0, 8) == 0) return decode_png(bytes, name, mode);
  return decode_other(bytes, name, mode);
}

Image read_image_file(const std::string& path, ColorMode mode) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read image (" + std::strerror(errno) + ")");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError(path + ": read error (" + std::strerror(errno) + ")");
  return decode_image(bytes, path, mode);
}

void resized_size(int width, int height, int size, int* out_width, int* out_height) {
  const bool w_short = width <= height;
  const int64_t s = w_short ? width : height, l = w_short ? height : width;
  const int long_side = static_cast<int>(static_cast<double>(int64_t{size} * l) / s);
  *out_width = w_short ? size : long_side;
  *out_height = w_short ? long_side : size;
}

void output_size(const Geometry& g, int width, int height, int* out_height, int* out_width) {
  int rw = width, rh = height;
  if (g.resize > 0) resized_size(width, height, g.resize, &rw, &rh);
  if (g.exact_width > 0) rw = g.exact_width, rh = g.exact_height;
  *out_height = g.crop_height > 0 ? g.crop_height : rh;
  *out_width = g.crop_width > 0 ? g.crop_width : rw;
}

void resize_crop(const Image& in, const Geometry& g, uint8_t* out) {
  const int C = in.channels;
  int rw = in.width, rh = in.height;
  if (g.resize > 0) resized_size(in.width, in.height, g.resize, &rw, &rh);
  if (g.exact_width > 0) rw = g.exact_width, rh = g.exact_height;
  const int cw = g.crop_width > 0 ? g.crop_width : rw;
  const int ch = g.crop_height > 0 ? g.crop_height : rh;
  const int x0 = g.crop_width > 0 ? crop_offset(rw, cw) : 0;
  const int y0 = g.crop_height > 0 ? crop_offset(rh, ch) : 0;
  const size_t plane = static_cast<size_t>(cw) * static_cast<size_t>(ch);
  std::memset(out, 0, plane * static_cast<size_t>(C));
  // Output pixels whose source lies inside the resized image (the rest is padding).
  const int ox0 = std::max(0, -x0), ox1 = std::min(cw, rw - x0);
  const int oy0 = std::max(0, -y0), oy1 = std::min(ch, rh - y0);
  if (ox0 >= ox1 || oy0 >= oy1) return;
  const int ncols = ox1 - ox0;
  const bool need_h = rw != in.width, need_v = rh != in.height;

  // Horizontal pass (or the source itself) over the rows the vertical pass will read, only for
  // the columns inside the crop: `mid` is rows [r0, r1) x ncols x C.
  Taps vt;
  int r0 = y0 + oy0, r1 = y0 + oy1;
  if (need_v) {
    vt = precompute_taps(in.height, rh, g.interpolation);
    r0 = vt.first[static_cast<size_t>(y0 + oy0)];
    r1 = 0;
    for (int y = y0 + oy0; y < y0 + oy1; ++y)
      r1 = std::max(r1, vt.first[static_cast<size_t>(y)] + vt.count[static_cast<size_t>(y)]);
  }
  const size_t row_bytes = static_cast<size_t>(ncols) * static_cast<size_t>(C);
  std::vector<uint8_t> mid(static_cast<size_t>(r1 - r0) * row_bytes);
  const size_t in_row = static_cast<size_t>(in.width) * static_cast<size_t>(C);
  if (need_h) {
    Taps ht = precompute_taps(in.width, rw, g.interpolation);
    for (int r = r0; r < r1; ++r) {
      const uint8_t* src = in.pixels.data() + static_cast<size_t>(r) * in_row;
      uint8_t* dst = mid.data() + static_cast<size_t>(r - r0) * row_bytes;
      for (int j = 0; j < ncols; ++j) {
        const size_t o = static_cast<size_t>(x0 + ox0 + j);
        const int lo = ht.first[o], n = ht.count[o];
        const int32_t* k = ht.k.data() + o * static_cast<size_t>(ht.ksize);
        for (int c = 0; c < C; ++c) {
          int32_t s = 1 << (kPrecisionBits - 1);
          const uint8_t* p = src + static_cast<size_t>(lo) * C + c;
          for (int t = 0; t < n; ++t) s += static_cast<int32_t>(p[t * C]) * k[t];
          dst[static_cast<size_t>(j) * C + c] = clip8(s);
        }
      }
    }
  } else {
    for (int r = r0; r < r1; ++r)
      std::memcpy(mid.data() + static_cast<size_t>(r - r0) * row_bytes,
                  in.pixels.data() + static_cast<size_t>(r) * in_row +
                      static_cast<size_t>(x0 + ox0) * C,
                  row_bytes);
  }

  // Vertical pass (or a copy), written as CHW.
  for (int oy = oy0; oy < oy1; ++oy) {
    const int y = y0 + oy;
    if (need_v) {
      const int lo = vt.first[static_cast<size_t>(y)], n = vt.count[static_cast<size_t>(y)];
      const int32_t* k = vt.k.data() + static_cast<size_t>(y) * static_cast<size_t>(vt.ksize);
      for (int j = 0; j < ncols; ++j)
        for (int c = 0; c < C; ++c) {
          int32_t s = 1 << (kPrecisionBits - 1);
          const uint8_t* p = mid.data() + static_cast<size_t>(lo - r0) * row_bytes +
                             static_cast<size_t>(j) * C + c;
          for (int t = 0; t < n; ++t) s += static_cast<int32_t>(p[t * row_bytes]) * k[t];
          out[static_cast<size_t>(c) * plane + static_cast<size_t>(oy) * cw + ox0 + j] = clip8(s);
        }
    } else {
      const uint8_t* p = mid.data() + static_cast<size_t>(y - r0) * row_bytes;
      for (int j = 0; j < ncols; ++j)
        for (int c = 0; c < C; ++c)
          out[static_cast<size_t>(c) * plane + static_cast<size_t>(oy) * cw + ox0 + j] =
              p[static_cast<size_t>(j) * C + c];
    }
  }
}

}  // namespace mpq::data
