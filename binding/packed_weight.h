// Packed GEMM weights as JS values: an External owning a ck::PackedWeight, tagged so that a plain
// object or another addon's External is rejected with a TypeError instead of being dereferenced.
#pragma once
#include "addon.h"
#include "gemm.h"

namespace ck_binding {

// The tag every packed-weight External carries (packWeight in gemm.cc, adoptPackedWeight in
// weight_map.cc): one value, so that a weight from either is accepted by every op.
inline constexpr napi_type_tag kPackedWeightTag = {0x636c69706b697447ull, 0x656d6d5061636b31ull};

// Reads options[name] as a packed weight and keeps it alive until the op's promise settles.
const ck::PackedWeight* packed_weight_arg(Args& a, const char* name);

}  // namespace ck_binding
