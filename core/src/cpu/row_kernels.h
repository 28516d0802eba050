// The CPU backend's inner loop, over contiguous rows, for float (float32/float16/bfloat16 accumulate in float)
// and double. Compiled once per x86-64 ISA level and picked at load time (row_kernels.cpp).
#pragma once

#include <cstdint>

namespace carafe {
namespace cpu {

constexpr int64_t kRowSlack = 8;

// out[o] (+)= sum over t = 0..terms-1, in that order, of a[t][o] * b[t][o], for o < len.
// accumulate: add to out's values instead of starting from zero.
// Every a[t] and b[t] must be readable for kRowSlack elements past len (what is read there is not used).
void sum_of_products(float* out, int64_t len, int terms, const float* const* a, const float* const* b,
                     bool accumulate);
void sum_of_products(double* out, int64_t len, int terms, const double* const* a, const double* const* b,
                     bool accumulate);

// The same sum for up to kMaxShared outputs that share the a rows, their b rows at fixed offsets from each
// other: outs[k][o] (+)= sum over t of a[t][o] * (b[t] + offsets[k])[o], for k < count, o < len. Loading each a
// row once for all outputs is what makes it faster than count separate calls (the channels of a group share
// their mask rows; the taps of a mask share their dY rows). Every a[t] and b[t] + offsets[k] must be readable for
// kRowSlack elements past len. Every output column is summed in a fixed order (which depends on len only), so
// results do not depend on how rows are split among threads.
constexpr int kMaxShared = 4;
void sum_of_products_shared(float* const* outs, int count, int64_t len, int terms, const float* const* a,
                            const float* const* b, const int64_t* offsets, bool accumulate);
void sum_of_products_shared(double* const* outs, int count, int64_t len, int terms, const double* const* a,
                            const double* const* b, const int64_t* offsets, bool accumulate);

// Phase split and merge of a contiguous row (see reassemble_cpu.cpp):
// split: dst[j*pitch + x] = src[sigma*x + j]; merge: dst[sigma*x + j] = src[j*pitch + x]; for x < len, j < sigma.
void split_phases(const float* src, int64_t len, int sigma, float* dst, int64_t pitch);
void split_phases(const double* src, int64_t len, int sigma, double* dst, int64_t pitch);
void merge_phases(const float* src, int64_t pitch, int64_t len, int sigma, float* dst);
void merge_phases(const double* src, int64_t pitch, int64_t len, int sigma, double* dst);

}  // namespace cpu
}  // namespace carafe
