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
// The kernels below must be inlined into each ISA clone: a copy the compiler keeps out of line is compiled for
// the baseline ISA only (SSE2), at half the speed or less.
#if defined(__GNUC__) || defined(__clang__)
#define CARAFE_INLINE inline __attribute__((always_inline))
#else
#define CARAFE_INLINE inline
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
CARAFE_INLINE typename Vec<A>::type load_vec(const A* p) {
  typename Vec<A>::type v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename A>
CARAFE_INLINE void store_vec(A* p, typename Vec<A>::type v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// the first `valid` lanes from memory, the others 0; and the first `valid` lanes to memory
template <typename A>
CARAFE_INLINE typename Vec<A>::type load_part(const A* p, int64_t valid) {
  typename Vec<A>::type v = {};
  for (int64_t i = 0; i < valid; ++i) v[i] = p[i];
  return v;
}

template <typename A>
CARAFE_INLINE void store_part(A* p, typename Vec<A>::type v, int64_t valid) {
  for (int64_t i = 0; i < valid; ++i) p[i] = v[i];
}

template <typename A>
CARAFE_INLINE void sum_of_products_impl(A* out, int64_t len, int terms, const A* const* a, const A* const* b,
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
// 8 accumulators, 1.25 vector loads per multiply-add instead of 2, and two pointer loads per term).
template <int K, typename A>
CARAFE_INLINE void sum_of_products_shared_impl(A* const* outs, int64_t len, int terms, const A* const* a,
                                               const A* const* b, const int64_t* offsets, bool accumulate) {
  using V = typename Vec<A>::type;
  constexpr int64_t lanes = Vec<A>::lanes, vectors = 2, block = lanes * vectors;
  int64_t off[K];
  for (int k = 0; k < K; ++k) off[k] = offsets[k];
  int64_t o = 0;
  // accumulators are loaded and stored a vector at a time: a wider copy through the stack would stall on store
  // forwarding once per block
  for (; o + block <= len; o += block) {
    V acc[K][vectors];
    for (int k = 0; k < K; ++k)
      for (int64_t v = 0; v < vectors; ++v) acc[k][v] = accumulate ? load_vec(outs[k] + o + v * lanes) : V{};
    for (int t = 0; t < terms; ++t) {
      const A* at = a[t] + o;
      const A* bt = b[t] + o;
      const V a0 = load_vec(at), a1 = load_vec(at + lanes);
      for (int k = 0; k < K; ++k) {
        acc[k][0] += a0 * load_vec(bt + off[k]);
        acc[k][1] += a1 * load_vec(bt + off[k] + lanes);
      }
    }
    for (int k = 0; k < K; ++k)
      for (int64_t v = 0; v < vectors; ++v) store_vec(outs[k] + o + v * lanes, acc[k][v]);
  }
  for (; o < len; o += lanes) {  // the rest, a vector at a time; the last one computed in full, stored in part
    // even and odd terms in separate accumulators, added at the end: twice the independent chains, so that the
    // loop is not held up by the multiply-add latency
    const int64_t valid = len - o < lanes ? len - o : lanes;
    V even[K], odd[K];
    for (int k = 0; k < K; ++k) {
      even[k] = accumulate ? load_part(outs[k] + o, valid) : V{};
      odd[k] = V{};
    }
    int t = 0;
    for (; t + 1 < terms; t += 2) {
      const V a0 = load_vec(a[t] + o), a1 = load_vec(a[t + 1] + o);
      const A* b0 = b[t] + o;
      const A* b1 = b[t + 1] + o;
      for (int k = 0; k < K; ++k) {
        even[k] += a0 * load_vec(b0 + off[k]);
        odd[k] += a1 * load_vec(b1 + off[k]);
      }
    }
    if (t < terms) {
      const V at = load_vec(a[t] + o);
      for (int k = 0; k < K; ++k) even[k] += at * load_vec(b[t] + o + off[k]);
    }
    for (int k = 0; k < K; ++k) store_part(outs[k] + o, even[k] + odd[k], valid);
  }
}

template <typename A>
CARAFE_INLINE void sum_of_products_shared_any(A* const* outs, int count, int64_t len, int terms, const A* const* a,
                                              const A* const* b, const int64_t* offsets, bool accumulate) {
  switch (count) {
    case 1: return sum_of_products_shared_impl<1>(outs, len, terms, a, b, offsets, accumulate);
    case 2: return sum_of_products_shared_impl<2>(outs, len, terms, a, b, offsets, accumulate);
    case 3: return sum_of_products_shared_impl<3>(outs, len, terms, a, b, offsets, accumulate);
    case 4: return sum_of_products_shared_impl<4>(outs, len, terms, a, b, offsets, accumulate);
  }
}

// sigma as a constant, so that the compiler turns the strided accesses into vector shuffles
template <int S, typename A>
CARAFE_INLINE void split_fixed(const A* __restrict src, int64_t len, A* __restrict dst, int64_t pitch) {
  for (int64_t x = 0; x < len; ++x)
    for (int j = 0; j < S; ++j) dst[j * pitch + x] = src[S * x + j];
}

template <int S, typename A>
CARAFE_INLINE void merge_fixed(const A* __restrict src, int64_t pitch, int64_t len, A* __restrict dst) {
  for (int64_t x = 0; x < len; ++x)
    for (int j = 0; j < S; ++j) dst[S * x + j] = src[j * pitch + x];
}

template <typename A>
CARAFE_INLINE void split_phases_impl(const A* src, int64_t len, int sigma, A* dst, int64_t pitch) {
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
CARAFE_INLINE void merge_phases_impl(const A* src, int64_t pitch, int64_t len, int sigma, A* dst) {
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
                                              const float* const* a, const float* const* b, const int64_t* offsets,
                                              bool accumulate) {
  sum_of_products_shared_any(outs, count, len, terms, a, b, offsets, accumulate);
}

CARAFE_ISA_CLONES void sum_of_products_shared(double* const* outs, int count, int64_t len, int terms,
                                              const double* const* a, const double* const* b,
                                              const int64_t* offsets, bool accumulate) {
  sum_of_products_shared_any(outs, count, len, terms, a, b, offsets, accumulate);
}

}  // namespace cpu
}  // namespace carafe
