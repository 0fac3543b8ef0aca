// hash_bytes (hash.h): four lanes of multiply / rotate over 8-byte words per chunk (the steps of
// XXH64, written out here), the lanes then merged one after another, the chunks likewise.
#include "hash.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "thread_pool.h"

namespace ck {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull,
                   kP4 = 0x85EBCA77C2B2AE63ull, kP5 = 0x27D4EB2F165667C5ull;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Little-endian whatever the host, so that a file hashes the same everywhere.
inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

// A lane's step: bijective in acc for a fixed word and in the word for a fixed acc (odd multipliers,
// an add, a rotation).
inline uint64_t step(uint64_t acc, uint64_t word) { return rotl(acc + word * kP2, 31) * kP1; }

// Folds v into h: bijective in h for a fixed v and in v for a fixed h.
inline uint64_t merge(uint64_t h, uint64_t v) { return rotl(h ^ step(0, v), 27) * kP1 + kP4; }

// A bijection that spreads every input bit over the whole word.
inline uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace

uint64_t hash_chunk(const void* data, size_t bytes, uint64_t index) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  const uint64_t seed = index * kP5;
  uint64_t v0 = seed + kP1 + kP2, v1 = seed + kP2, v2 = seed, v3 = seed - kP1;
  size_t i = 0;
  // Four independent chains, so the multiplies of one word overlap those of the next three.
  for (; i + 32 <= bytes; i += 32) {
    v0 = step(v0, load64(p + i));
    v1 = step(v1, load64(p + i + 8));
    v2 = step(v2, load64(p + i + 16));
    v3 = step(v3, load64(p + i + 24));
  }
  // Each lane merged on its own (not summed first), so that one lane changing always changes h.
  uint64_t h = merge(merge(merge(merge(seed + kP5, v0), v1), v2), v3) + bytes;
  for (; i + 8 <= bytes; i += 8) h = merge(h, load64(p + i));
  if (i < bytes) {
    unsigned char last[8] = {};
    std::memcpy(last, p + i, bytes - i);
    h = merge(h, load64(last));  // zero-padded: the length, mixed in above, tells it from real zeros
  }
  return avalanche(h);
}

ck_status hash_bytes(const void* data, size_t bytes, uint64_t* out) {
  if (!out || (!data && bytes)) return CK_ERR_ARG;
  const size_t chunks = (bytes + kHashChunkBytes - 1) / kHashChunkBytes;
  std::vector<uint64_t> each(chunks);
  const unsigned char* p = static_cast<const unsigned char*>(data);
  pool().parallel_for(chunks, [&](size_t c, int) {
    const size_t at = c * kHashChunkBytes;
    each[c] = hash_chunk(p + at, std::min(kHashChunkBytes, bytes - at), c);
  });
  uint64_t h = kP5 + bytes;
  for (uint64_t c : each) h = merge(h, c);
  *out = avalanche(h);
  return CK_OK;
}

}  // namespace ck
