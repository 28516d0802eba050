// The CPU backend's inner loop. On x86-64 with GCC or Clang it is compiled for AVX-512 (x86-64-v4), AVX2+FMA
// (x86-64-v3) and the baseline, and the loader picks the best the CPU has (target_clones): one portable binary
// runs at the speed of the machine it lands on.
#include "cpu/row_kernels.h"

#include <cstddef>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__APPLE__)
#define CARAFE_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CARAFE_ISA_CLONES
#endif

namespace carafe {
namespace cpu {
namespace {

// A block of columns is summed over all terms in registers. GCC/Clang vector extensions make that explicit:
// plain loops over a local accumulator array are not reliably vectorized.
template <typename A>
struct Vec {
  typedef A type __attribute__((vector_size(32)));  // 8 floats / 4 doubles; two registers on SSE-only CPUs
  static constexpr int64_t lanes = 32 / sizeof(A);
};

template <typename A>
inline typename Vec<A>::type load_vec(const A* p) {
  typename Vec<A>::type v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename A>
inline void sum_of_products_impl(A* out, int64_t len, int terms, const A* const* a, const A* const* b,
                                 bool accumulate) {
  using V = typename Vec<A>::type;
  constexpr int64_t lanes = Vec<A>::lanes, vectors = 4, block = lanes * vectors;
  int64_t o = 0;
  for (; o + block <= len; o += block) {
    V acc[vectors] = {};
    if (accumulate) __builtin_memcpy(acc, out + o, sizeof acc);
    for (int t = 0; t < terms; ++t) {
      const A* at = a[t] + o;
      const A* bt = b[t] + o;
      for (int64_t v = 0; v < vectors; ++v) acc[v] += load_vec(at + v * lanes) * load_vec(bt + v * lanes);
    }
    __builtin_memcpy(out + o, acc, sizeof acc);
  }
  for (; o + lanes <= len; o += lanes) {
    V acc = {};
    if (accumulate) acc = load_vec(out + o);
    for (int t = 0; t < terms; ++t) acc += load_vec(a[t] + o) * load_vec(b[t] + o);
    __builtin_memcpy(out + o, &acc, sizeof acc);
  }
  if (o < len) {  // the last partial vector: computed in full (rows are readable that far), stored in part
    V acc = {};
    if (accumulate) __builtin_memcpy(&acc, out + o, std::size_t(len - o) * sizeof(A));
    for (int t = 0; t < terms; ++t) acc += load_vec(a[t] + o) * load_vec(b[t] + o);
    __builtin_memcpy(out + o, &acc, std::size_t(len - o) * sizeof(A));
  }
}

// K outputs sharing the a rows, a block of two vectors per output held in registers across all terms (K = 4:
// 8 accumulators, 1.25 loads per multiply-add instead of 2).
template <int K, typename A>
inline void sum_of_products_shared_impl(A* const* outs, int64_t len, int terms, const A* const* a,
                                        const A* const* b, bool accumulate) {
  using V = typename Vec<A>::type;
  constexpr int64_t lanes = Vec<A>::lanes, vectors = 2, block = lanes * vectors;
  int64_t o = 0;
  for (; o + block <= len; o += block) {
    V acc[K][vectors] = {};
    if (accumulate)
      for (int k = 0; k < K; ++k) __builtin_memcpy(acc[k], outs[k] + o, sizeof acc[k]);
    for (int t = 0; t < terms; ++t) {
      const V a0 = load_vec(a[t] + o), a1 = load_vec(a[t] + o + lanes);
      for (int k = 0; k < K; ++k) {
        const A* bt = b[k * terms + t] + o;
        acc[k][0] += a0 * load_vec(bt);
        acc[k][1] += a1 * load_vec(bt + lanes);
      }
    }
    for (int k = 0; k < K; ++k) __builtin_memcpy(outs[k] + o, acc[k], sizeof acc[k]);
  }
  for (; o < len; o += lanes) {  // the rest, a vector at a time; the last one computed in full, stored in part
    const std::size_t bytes = std::size_t(len - o < lanes ? len - o : lanes) * sizeof(A);
    V acc[K] = {};
    if (accumulate)
      for (int k = 0; k < K; ++k) __builtin_memcpy(&acc[k], outs[k] + o, bytes);
    for (int t = 0; t < terms; ++t) {
      const V at = load_vec(a[t] + o);
      for (int k = 0; k < K; ++k) acc[k] += at * load_vec(b[k * terms + t] + o);
    }
    for (int k = 0; k < K; ++k) __builtin_memcpy(outs[k] + o, &acc[k], bytes);
  }
}

template <typename A>
inline void sum_of_products_shared_any(A* const* outs, int count, int64_t len, int terms, const A* const* a,
                                       const A* const* b, bool accumulate) {
  switch (count) {
    case 1: return sum_of_products_shared_impl<1>(outs, len, terms, a, b, accumulate);
    case 2: return sum_of_products_shared_impl<2>(outs, len, terms, a, b, accumulate);
    case 3: return sum_of_products_shared_impl<3>(outs, len, terms, a, b, accumulate);
    case 4: return sum_of_products_shared_impl<4>(outs, len, terms, a, b, accumulate);
  }
}

// sigma as a constant, so that the compiler turns the strided accesses into vector shuffles
template <int S, typename A>
inline void split_fixed(const A* __restrict src, int64_t len, A* __restrict dst, int64_t pitch) {
  for (int64_t x = 0; x < len; ++x)
    for (int j = 0; j < S; ++j) dst[j * pitch + x] = src[S * x + j];
}

template <int S, typename A>
inline void merge_fixed(const A* __restrict src, int64_t pitch, int64_t len, A* __restrict dst) {
  for (int64_t x = 0; x < len; ++x)
    for (int j = 0; j < S; ++j) dst[S * x + j] = src[j * pitch + x];
}

template <typename A>
inline void split_phases_impl(const A* src, int64_t len, int sigma, A* dst, int64_t pitch) {
  switch (sigma) {
    case 1: return split_fixed<1>(src, len, dst, pitch);
    case 2: return split_fixed<2>(src, len, dst, pitch);
    case 3: return split_fixed<3>(src, len, dst, pitch);
    case 4: return split_fixed<4>(src, len, dst, pitch);
  }
  for (int64_t x = 0; x < len; ++x)
    for (int j = 0; j < sigma; ++j) dst[j * pitch + x] = src[sigma * x + j];
}

template <typename A>
inline void merge_phases_impl(const A* src, int64_t pitch, int64_t len, int sigma, A* dst) {
  switch (sigma) {
    case 1: return merge_fixed<1>(src, pitch, len, dst);
    case 2: return merge_fixed<2>(src, pitch, len, dst);
    case 3: return merge_fixed<3>(src, pitch, len, dst);
    case 4: return merge_fixed<4>(src, pitch, len, dst);
  }
  for (int64_t x = 0; x < len; ++x)
    for (int j = 0; j < sigma; ++j) dst[sigma * x + j] = src[j * pitch + x];
}

}  // namespace

CARAFE_ISA_CLONES void split_phases(const float* src, int64_t len, int sigma, float* dst, int64_t pitch) {
  split_phases_impl(src, len, sigma, dst, pitch);
}
CARAFE_ISA_CLONES void split_phases(const double* src, int64_t len, int sigma, double* dst, int64_t pitch) {
  split_phases_impl(src, len, sigma, dst, pitch);
}
CARAFE_ISA_CLONES void merge_phases(const float* src, int64_t pitch, int64_t len, int sigma, float* dst) {
  merge_phases_impl(src, pitch, len, sigma, dst);
}
CARAFE_ISA_CLONES void merge_phases(const double* src, int64_t pitch, int64_t len, int sigma, double* dst) {
  merge_phases_impl(src, pitch, len, sigma, dst);
}

CARAFE_ISA_CLONES void sum_of_products(float* out, int64_t len, int terms, const float* const* a,
                                       const float* const* b, bool accumulate) {
  sum_of_products_impl(out, len, terms, a, b, accumulate);
}

CARAFE_ISA_CLONES void sum_of_products(double* out, int64_t len, int terms, const double* const* a,
                                       const double* const* b, bool accumulate) {
  sum_of_products_impl(out, len, terms, a, b, accumulate);
}

CARAFE_ISA_CLONES void sum_of_products_shared(float* const* outs, int count, int64_t len, int terms,
                                              const float* const* a, const float* const* b, bool accumulate) {
  sum_of_products_shared_any(outs, count, len, terms, a, b, accumulate);
}

CARAFE_ISA_CLONES void sum_of_products_shared(double* const* outs, int count, int64_t len, int terms,
                                              const double* const* a, const double* const* b, bool accumulate) {
  sum_of_products_shared_any(outs, count, len, terms, a, b, accumulate);
}

}  // namespace cpu
}  // namespace carafe
