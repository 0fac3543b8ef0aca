// resizeU8({ src, dst, width, height, channels, outWidth, outHeight, filter, premultiplyAlpha }) -> Promise<void>
#include "addon.h"
#include "resize.h"

namespace ck_binding {

static Napi::Value ResizeU8(const Napi::CallbackInfo& info) {
  Args a(info, "resizeU8");
  const size_t width = a.size("width"), height = a.size("height"), channels = a.size("channels");
  const size_t out_width = a.size("outWidth"), out_height = a.size("outHeight");
  const size_t filter = a.size("filter");
  if (channels < 1 || channels > 4 || filter > 5)
    throw_range(a.env(), "E_ARG", "resizeU8: expected channels in [1, 4] and filter in [0, 5]");
  auto src = a.u8_opt("src"), dst = a.u8_opt("dst");
  if (!src || !dst) throw_type(a.env(), "E_ARG", "resizeU8: expected Uint8Array src and dst");
  a.expect_length("src", src, a.product({height, width, channels}));
  a.expect_length("dst", dst, a.product({out_height, out_width, channels}));
  ck::ResizeArgs args{src.data, dst.data, width, height, channels, out_width, out_height,
                      static_cast<ck::ResizeFilter>(filter), a.flag("premultiplyAlpha", false)};
  return queue_job(a, [args] { return ck::resize_u8(args); });
}
CK_EXPORT("resizeU8", ResizeU8);

}  // namespace ck_binding
