// patchEmbed({ pixels, batch, channels, height, width, patch, w: handle, bias?, classEmb, posEmb, y }) -> Promise<void>
#include "packed_weight.h"
#include "patch_embed.h"

namespace ck_binding {

static Napi::Value PatchEmbed(const Napi::CallbackInfo& info) {
  Args a(info, "patchEmbed");
  const ck::PackedWeight* w = packed_weight_arg(a, "w");
  const size_t batch = a.size("batch"), channels = a.size("channels"), height = a.size("height"), width = a.size("width");
  const size_t patch = a.size("patch");
  if (patch == 0 || height % patch || width % patch)
    throw_range(a.env(), "E_SHAPE", "patchEmbed: expected height and width to be multiples of patch " + std::to_string(patch));
  const size_t patches = (height / patch) * (width / patch), dim = w->n;
  if (w->k != a.product({channels, patch, patch}))
    throw_range(a.env(), "E_SHAPE", "patchEmbed: expected a packed weight with k = channels·patch·patch = " +
                                        std::to_string(channels * patch * patch) + " but it has k " + std::to_string(w->k));
  auto pixels = a.f32("pixels"), bias = a.f32_opt("bias"), cls = a.f32("classEmb"), pos = a.f32("posEmb"), y = a.f32("y");
  a.expect_length("pixels", pixels, a.product({batch, channels, height, width}));
  if (bias) a.expect_length("bias", bias, dim);
  a.expect_length("classEmb", cls, dim);
  a.expect_length("posEmb", pos, a.product({patches + 1, dim}));
  a.expect_length("y", y, a.product({batch, patches + 1, dim}));
  ck::PatchEmbedArgs args{pixels.data, batch, channels, height, width, patch, w, bias.data, cls.data, pos.data, y.data};
  return queue_job(a, [args] { return ck::patch_embed_f32(args); });
}
CK_EXPORT("patchEmbed", PatchEmbed);

}  // namespace ck_binding
