#pragma once
#include "common.h"

namespace ck {

// Pillow's resampling filters, numbered as PIL.Image.Resampling.
enum class ResizeFilter : int { Nearest = 0, Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5 };

// Resizes a uint8 image [height, width, channels] (row-major, channels interleaved, 1..4 channels) to
// [out_height, out_width, channels] exactly as Pillow 9.4's Image.resize does with the default box.
// `premultiply_alpha` (2 or 4 channels, not Nearest): the LA / RGBA path of Image.resize, which converts
// to La / RGBa (c·a/255 rounded), resamples, then converts back (floor(255·c/a), clipped).
struct ResizeArgs {
  const uint8_t* src;
  uint8_t* dst;
  size_t width, height, channels;
  size_t out_width, out_height;
  ResizeFilter filter;
  bool premultiply_alpha;
};

ck_status resize_u8(const ResizeArgs& a);

}  // namespace ck
