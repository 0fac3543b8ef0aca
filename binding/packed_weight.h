// Packed GEMM weights as JS values: an External owning a ck::PackedWeight, tagged so that a plain
// object or another addon's External is rejected with a TypeError instead of being dereferenced.
#pragma once
#include "addon.h"
#include "gemm.h"

namespace ck_binding {

// Reads options[name] as a packed weight and keeps it alive until the op's promise settles.
const ck::PackedWeight* packed_weight_arg(Args& a, const char* name);

}  // namespace ck_binding
