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

// The same sum for a block of outputs that share rows both ways, as a matrix product's micro-kernel does:
//   outs[p * count_b + q][o] (+)= sum over t of a[p * terms + t][o] * (b[t] + offsets[q])[o]
// for p < count_a <= kMaxOuter, q < count_b <= kMaxOuter, o < len. Each a row is loaded once for count_b outputs
// and each b row once for count_a outputs (the forward: the phase rows of a source row share its input rows, the
// channels of a group share its mask rows). Every a row and b[t] + offsets[q] must be readable for kRowSlack
// elements past len. Every output column is summed in a fixed order (which depends on len only), so results do
// not depend on how rows are split among threads.
constexpr int kMaxOuter = 4;
void sum_of_products_outer(float* const* outs, int count_a, int count_b, int64_t len, int terms,
                           const float* const* a, const float* const* b, const int64_t* offsets, bool accumulate);
void sum_of_products_outer(double* const* outs, int count_a, int count_b, int64_t len, int terms,
                           const double* const* a, const double* const* b, const int64_t* offsets, bool accumulate);

// Phase split and merge of a contiguous row (see reassemble_cpu.cpp):
// split: dst[j*pitch + x] = src[sigma*x + j]; merge: dst[sigma*x + j] = src[j*pitch + x]; for x < len, j < sigma.
void split_phases(const float* src, int64_t len, int sigma, float* dst, int64_t pitch);
void split_phases(const double* src, int64_t len, int sigma, double* dst, int64_t pitch);
// Softmax across rows[0..count) at every column x < len, in place (the max subtracted first); the rows must be
// readable kRowSlack values past len, scratch holds 2 * len + kRowSlack values. float: a vectorized exp (within 2
// ulp of std::exp; NaN and infinities as std::exp).
void softmax_across_rows(float* const* rows, int count, int64_t len, float* scratch);
void softmax_across_rows(double* const* rows, int count, int64_t len, double* scratch);

// merge_phases writes its rows with streaming stores where it can; a thread calls this after its last one, so
// that they are visible to other threads once it has finished.
void finish_streamed_stores();
void merge_phases(const float* src, int64_t pitch, int64_t len, int sigma, float* dst);
void merge_phases(const double* src, int64_t pitch, int64_t len, int sigma, double* dst);

}  // namespace cpu
}  // namespace carafe
