// hash_bytes: a 64-bit hash of a byte range, to check that bytes read back (a cache file's data)
// are the bytes that were written, before they are trusted. Not cryptographic: it catches damage,
// not an attacker.
//
// What must stay true: the value depends on the bytes alone, never on the thread count, the ISA or
// where the bytes lie in memory (the range is cut into kHashChunkBytes chunks hashed independently,
// then combined in order); and every step is a bijection of the state for a fixed input word and of
// the word for a fixed state, so a change confined to one 8-byte word of a chunk (any single bit
// flip) always changes the hash. Other damage (a zeroed range) goes unseen with odds of about 2^-64.
// Changing any constant or step changes every hash, so files hashed before no longer verify.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common.h"

namespace ck {

constexpr size_t kHashChunkBytes = size_t(1) << 20;

// One chunk (at most kHashChunkBytes, on the calling thread); `index` is its place in the range.
uint64_t hash_chunk(const void* data, size_t bytes, uint64_t index);

// The whole range: its chunks on the pool's threads, combined in order. Called inside a job.
ck_status hash_bytes(const void* data, size_t bytes, uint64_t* out);

}  // namespace ck
