// Image decoding and geometric preprocessing that reproduce, bit for bit, what torchvision 0.14's
// eval transform sees when it runs on PIL 9.4 (../shared/datasets.md §1; docs/datasets.md):
//
//   PIL.Image.open(path).convert("RGB" | "L")  ->  Resize(short side)  ->  CenterCrop
//
// Decoding. The file is read into memory and sniffed by content, not by name (a PNG named .JPEG
// decodes as PNG, as in PIL). JPEGs are decoded with libjpeg (the libjpeg62-turbo that PIL links)
// with PIL's settings: ISLOW DCT, fancy upsampling, no EXIF rotation. Gray JPEGs replicate into
// RGB; CMYK/YCCK JPEGs are decoded to CMYK, inverted (PIL assumes Adobe's inverted CMYK) and
// converted with PIL's cmyk2rgb:  nk = 255 - K;  R = clip(nk - muldiv255(C, nk))  (same for G, B),
// muldiv255(a, b) = ((t >> 8) + t) >> 8 with t = a*b + 128. PNGs are decoded with libpng (with
// warnings silenced, as PIL ignores them): RGBA drops alpha, palettes expand, gray replicates,
// 16-bit keeps the high byte (what PIL's convert("RGB") does). Other formats (BMP, TIFF, WebP,
// ...) go through cv::imdecode with IMREAD_IGNORE_ORIENTATION. "L" (gray) output uses PIL's ITU-R 601-2 fixed
// point luma: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
// A truncated JPEG is an error (PIL raises "image file is truncated"); harmless libjpeg warnings
// (extraneous bytes before a marker) are ignored as in PIL.
//
// Resizing is Pillow's two-pass separable resampling in its 8-bit path (Resample.c): a filter of
// support `support * max(in/out, 1)` centred at (x + 0.5) * in/out, taps from
// int(center - support + 0.5) (>= 0) to int(center + support + 0.5) (<= in), weights
// filter((j - center + 0.5) / filterscale) normalised to sum 1 in double, then turned into fixed
// point with 22 fractional bits (rounded half away from zero); a pixel is
// clip((2^21 + sum pixel * weight) >> 22, 0, 255). The horizontal pass runs first and its result
// is rounded to uint8; a pass is skipped when its dimension does not change. Bilinear (triangle,
// support 1) and bicubic (Keys, a = -0.5, support 2) are supported.
//
// The fused preprocess_image() computes only the pixels inside the final crop (each output pixel
// of Pillow's passes depends only on its own taps, so this changes nothing but the time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mpq::data {

enum class ColorMode { kRgb, kGray };
enum class Interpolation { kBilinear, kBicubic };

const char* color_mode_name(ColorMode c);
const char* interpolation_name(Interpolation i);

/// An 8-bit image, interleaved HWC (channels 1 or 3, RGB order).
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  ///< height * width * channels bytes
};

/// Decodes an image file held in memory as PIL's Image.open(...).convert(mode) would.
/// `name` is used in messages. Throws InputError("<name>: ...") for an empty, truncated or
/// undecodable file.
Image decode_image(const std::string& bytes, const std::string& name, ColorMode mode);

/// Reads and decodes a file (InputError naming it if unreadable).
Image read_image_file(const std::string& path, ColorMode mode);

/// torchvision's Resize(size) output size for an image of width x height: the short side becomes
/// `size`, the long side int(size * long / short) (Python's true division then truncation).
void resized_size(int width, int height, int size, int* out_width, int* out_height);

/// What preprocess_image does: resize the short side to `resize` (0 = keep the size), then a
/// centre crop of crop_height x crop_width (0 = no crop), torchvision's offsets
/// round((H - crop) / 2) with round-half-to-even, zero padding where the crop exceeds the image.
struct Geometry {
  int resize = 0;
  int crop_height = 0, crop_width = 0;
  Interpolation interpolation = Interpolation::kBilinear;
  /// Resize the whole image to exactly exact_height x exact_width instead (aspect not kept, as
  /// SSD-style detectors want; `resize` must then be 0). 0 = off.
  int exact_height = 0, exact_width = 0;
};

/// Output {height, width} of `geometry` for an input of width x height.
void output_size(const Geometry& geometry, int width, int height, int* out_height, int* out_width);

/// Resize + centre crop of `in` into `out` (CHW, uint8, in.channels * out_height * out_width
/// bytes; sizes from output_size()). Bit-identical to Pillow's resize followed by torchvision's
/// center_crop (pad then crop).
void resize_crop(const Image& in, const Geometry& geometry, uint8_t* out);

}  // namespace mpq::data
