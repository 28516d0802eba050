// The CPU backend's inner loop. On x86-64 with GCC or Clang it is compiled for AVX-512 (x86-64-v4), AVX2+FMA
// (x86-64-v3) and the baseline, and the loader picks the best the CPU has (target_clones): one portable binary
// runs at the speed of the machine it lands on.
#include "cpu/row_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

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

// A P x Q block of outputs, V vectors of columns each, held in registers across all terms: per term P + Q row
// loads feed P * Q multiply-adds (4 x 4: 0.5 loads per multiply-add; the plain sum_of_products needs 2).
template <int P, int Q, int V, typename A>
CARAFE_INLINE void outer_block(A* const* outs, int64_t o, int terms, const A* const* a, const A* const* b,
                               const int64_t* off, bool accumulate) {
  using Vt = typename Vec<A>::type;
  constexpr int64_t lanes = Vec<A>::lanes;
  Vt acc[P][Q][V];
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q)
      for (int v = 0; v < V; ++v) acc[p][q][v] = accumulate ? load_vec(outs[p * Q + q] + o + v * lanes) : Vt{};
  for (int t = 0; t < terms; ++t) {
    Vt at[P][V];
    for (int p = 0; p < P; ++p)
      for (int v = 0; v < V; ++v) at[p][v] = load_vec(a[p * terms + t] + o + v * lanes);
    const A* bt = b[t] + o;
    for (int q = 0; q < Q; ++q)
      for (int v = 0; v < V; ++v) {
        const Vt bv = load_vec(bt + off[q] + v * lanes);
        for (int p = 0; p < P; ++p) acc[p][q][v] += at[p][v] * bv;
      }
  }
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q)
      for (int v = 0; v < V; ++v) store_vec(outs[p * Q + q] + o + v * lanes, acc[p][q][v]);
}

// The last columns (fewer than a vector): even and odd terms in separate accumulators, added at the end, so that
// the loop is not held up by the multiply-add latency; stored in part.
template <int P, int Q, typename A>
CARAFE_INLINE void outer_tail(A* const* outs, int64_t o, int64_t valid, int terms, const A* const* a,
                              const A* const* b, const int64_t* off, bool accumulate) {
  using Vt = typename Vec<A>::type;
  Vt even[P][Q], odd[P][Q];
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q) {
      even[p][q] = accumulate ? load_part(outs[p * Q + q] + o, valid) : Vt{};
      odd[p][q] = Vt{};
    }
  int t = 0;
  for (; t + 1 < terms; t += 2)
    for (int q = 0; q < Q; ++q) {
      const Vt b0 = load_vec(b[t] + o + off[q]), b1 = load_vec(b[t + 1] + o + off[q]);
      for (int p = 0; p < P; ++p) {
        even[p][q] += load_vec(a[p * terms + t] + o) * b0;
        odd[p][q] += load_vec(a[p * terms + t + 1] + o) * b1;
      }
    }
  if (t < terms)
    for (int q = 0; q < Q; ++q) {
      const Vt bv = load_vec(b[t] + o + off[q]);
      for (int p = 0; p < P; ++p) even[p][q] += load_vec(a[p * terms + t] + o) * bv;
    }
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q) store_part(outs[p * Q + q] + o, even[p][q] + odd[p][q], valid);
}

// Two vectors of columns per output when the block is small (at least 8 independent accumulators), one otherwise.
template <int P, int Q, typename A>
CARAFE_INLINE void outer_row(A* const* outs, int64_t len, int terms, const A* const* a, const A* const* b,
                             const int64_t* offsets, bool accumulate) {
  constexpr int V = P * Q <= 4 ? 2 : 1;
  constexpr int64_t lanes = Vec<A>::lanes, block = V * lanes;
  int64_t off[Q];
  for (int q = 0; q < Q; ++q) off[q] = offsets[q];
  int64_t o = 0;
  for (; o + block <= len; o += block) outer_block<P, Q, V>(outs, o, terms, a, b, off, accumulate);
  if (V == 2 && o + lanes <= len) {
    outer_block<P, Q, 1>(outs, o, terms, a, b, off, accumulate);
    o += lanes;
  }
  if (o < len) outer_tail<P, Q>(outs, o, len - o, terms, a, b, off, accumulate);
}

// P x Q from the counts. 16 vector registers (AVX2) hold a 2 x 4 block with its a rows; 32 (AVX-512) a 4 x 4
// block: a larger count_a is done in parts of 2 rows there.
template <int Q, typename A>
CARAFE_INLINE void outer_rows(A* const* outs, int count_a, int64_t len, int terms, const A* const* a,
                              const A* const* b, const int64_t* offsets, bool accumulate, bool wide) {
  if (wide) {
    switch (count_a) {
      case 4: return outer_row<4, Q>(outs, len, terms, a, b, offsets, accumulate);
      case 3: return outer_row<3, Q>(outs, len, terms, a, b, offsets, accumulate);
    }
  }
  for (int p0 = 0; p0 < count_a; p0 += 2) {
    A* const* o = outs + p0 * Q;
    const A* const* ap = a + p0 * terms;
    if (count_a - p0 >= 2) {
      outer_row<2, Q>(o, len, terms, ap, b, offsets, accumulate);
    } else {
      outer_row<1, Q>(o, len, terms, ap, b, offsets, accumulate);
    }
  }
}

template <typename A>
CARAFE_INLINE void sum_of_products_outer_any(A* const* outs, int count_a, int count_b, int64_t len, int terms,
                                             const A* const* a, const A* const* b, const int64_t* offsets,
                                             bool accumulate, bool wide) {
  switch (count_b) {
    case 1: return outer_rows<1>(outs, count_a, len, terms, a, b, offsets, accumulate, wide);
    case 2: return outer_rows<2>(outs, count_a, len, terms, a, b, offsets, accumulate, wide);
    case 3: return outer_rows<3>(outs, count_a, len, terms, a, b, offsets, accumulate, wide);
    case 4: return outer_rows<4>(outs, count_a, len, terms, a, b, offsets, accumulate, wide);
  }
}

bool has_32_vector_registers() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return avx512;
#else
  return false;
#endif
}

// exp of a vector of floats: 2^n * e^f with n = round(x / ln 2) and e^f a degree-6 polynomial on |f| <= ln2 / 2
// (the Cephes coefficients), the ln 2 split in two for an exact reduction. Within 2 ulp of std::exp; below -87.3
// it gives 0 (std::exp's subnormals), above 88.7 infinity; NaN stays NaN.
CARAFE_INLINE typename Vec<float>::type exp_vec(typename Vec<float>::type x) {
  using V = typename Vec<float>::type;
  using I = typename Vec<int32_t>::type;
  const V clamped = x < V{} - 87.3f ? V{} - 87.3f : (x > V{} + 88.7f ? V{} + 88.7f : x);
  const V n = __builtin_convertvector(__builtin_convertvector(clamped * 1.44269504088896341f +
                                                              (clamped < V{} ? V{} - 0.5f : V{} + 0.5f), I), V);
  const V f = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * f * f + f + 1.0f;
  // 2^n, built in two halves so that n = 128 (near the top of the range) does not overflow the exponent
  const I half = __builtin_convertvector(n, I) >> 1;
  V scale_a, scale_b;
  const I bits_a = (half + 127) << 23, bits_b = (__builtin_convertvector(n, I) - half + 127) << 23;
  __builtin_memcpy(&scale_a, &bits_a, sizeof scale_a);
  __builtin_memcpy(&scale_b, &bits_b, sizeof scale_b);
  V result = p * scale_a * scale_b;
  result = x < V{} - 87.3f ? V{} : result;           // underflow to 0
  result = x > V{} + 88.7f ? V{} + __builtin_inff() : result;  // overflow to infinity
  return x != x ? x : result;                        // NaN
}

CARAFE_INLINE void softmax_across_rows_impl(float* const* rows, int count, int64_t len, float* scratch) {
  using V = typename Vec<float>::type;
  constexpr int64_t lanes = Vec<float>::lanes;
  float* inverse = scratch;  // 1 / the sum of each column
  for (int64_t x = 0; x < len; x += lanes) {
    // rows are readable a vector past len (kRowSlack); only the first `valid` columns are written
    const int64_t valid = len - x < lanes ? len - x : lanes;
    V m = load_vec(rows[0] + x);
    for (int t = 1; t < count; ++t) {
      const V v = load_vec(rows[t] + x);
      m = v > m ? v : m;
    }
    V sum = {};
    for (int t = 0; t < count; ++t) {
      const V e = exp_vec(load_vec(rows[t] + x) - m);
      store_part(rows[t] + x, e, valid);
      sum += e;
    }
    store_part(inverse + x, (V{} + 1.0f) / sum, valid);
  }
  for (int t = 0; t < count; ++t)
    for (int64_t x = 0; x < len; x += lanes)
      store_part(rows[t] + x, load_vec(rows[t] + x) * load_vec(inverse + x), len - x < lanes ? len - x : lanes);
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

// Stores a row of values that nothing reads again soon (an output row) around the caches where it can, so that
// writing it costs no read of the destination lines first: half the memory traffic of the forward's output.
template <typename A>
CARAFE_INLINE void stream_row(const A* src, int64_t count, A* dst) {
#if defined(__SSE2__)
  if ((reinterpret_cast<uintptr_t>(dst) & 15) == 0) {
    const int64_t per = 16 / int64_t(sizeof(A));
    int64_t i = 0;
    for (; i + per <= count; i += per) {
      if constexpr (sizeof(A) == 4) {
        _mm_stream_ps(reinterpret_cast<float*>(dst + i), _mm_loadu_ps(reinterpret_cast<const float*>(src + i)));
      } else {
        _mm_stream_pd(reinterpret_cast<double*>(dst + i), _mm_loadu_pd(reinterpret_cast<const double*>(src + i)));
      }
    }
    for (; i < count; ++i) dst[i] = src[i];
    return;
  }
#endif
  std::memcpy(dst, src, std::size_t(count) * sizeof(A));
}

template <typename A>
CARAFE_INLINE void merge_phases_impl(const A* src, int64_t pitch, int64_t len, int sigma, A* dst) {
  constexpr int64_t chunk = 512;  // merged in a small buffer that stays in L1, then streamed out
  if (sigma >= 1 && sigma <= 4 && len * sigma >= 64) {
    alignas(64) A merged[chunk * 4];
    for (int64_t x0 = 0; x0 < len; x0 += chunk) {
      const int64_t n = len - x0 < chunk ? len - x0 : chunk;
      switch (sigma) {
        case 1: merge_fixed<1>(src + x0, pitch, n, merged); break;
        case 2: merge_fixed<2>(src + x0, pitch, n, merged); break;
        case 3: merge_fixed<3>(src + x0, pitch, n, merged); break;
        case 4: merge_fixed<4>(src + x0, pitch, n, merged); break;
      }
      stream_row(merged, n * sigma, dst + x0 * sigma);
    }
    return;
  }
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

CARAFE_ISA_CLONES void softmax_across_rows(float* const* rows, int count, int64_t len, float* scratch) {
  softmax_across_rows_impl(rows, count, len, scratch);
}

void softmax_across_rows(double* const* rows, int count, int64_t len, double* scratch) {
  double* top = scratch;
  double* sum = scratch + len;  // scratch: 2 * len values
  std::copy(rows[0], rows[0] + len, top);
  for (int t = 1; t < count; ++t)
    for (int64_t x = 0; x < len; ++x) top[x] = std::max(top[x], rows[t][x]);
  std::fill(sum, sum + len, 0.0);
  for (int t = 0; t < count; ++t)
    for (int64_t x = 0; x < len; ++x) sum[x] += rows[t][x] = std::exp(rows[t][x] - top[x]);
  for (int64_t x = 0; x < len; ++x) sum[x] = 1.0 / sum[x];
  for (int t = 0; t < count; ++t)
    for (int64_t x = 0; x < len; ++x) rows[t][x] *= sum[x];
}

void finish_streamed_stores() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

CARAFE_ISA_CLONES void sum_of_products_outer(float* const* outs, int count_a, int count_b, int64_t len, int terms,
                                             const float* const* a, const float* const* b, const int64_t* offsets,
                                             bool accumulate) {
  sum_of_products_outer_any(outs, count_a, count_b, len, terms, a, b, offsets, accumulate, has_32_vector_registers());
}

CARAFE_ISA_CLONES void sum_of_products_outer(double* const* outs, int count_a, int count_b, int64_t len, int terms,
                                             const double* const* a, const double* const* b,
                                             const int64_t* offsets, bool accumulate) {
  sum_of_products_outer_any(outs, count_a, count_b, len, terms, a, b, offsets, accumulate, has_32_vector_registers());
}

}  // namespace cpu
}  // namespace carafe
