// CPU backend. Work is split over threads by input rows (n, h); within a row, every hot loop is
// sum_of_products (row_kernels.h) over contiguous accumulation-type rows, which runs at SIMD speed.
//
// The trick that makes the rows contiguous is to split each output row by phase: output column ox = sigma*x + j
// belongs to phase j and source column x. Within one phase,
//   Y[oy, sigma*x + j] = sum_t M_t[oy, sigma*x + j] * X[oy/sigma + dy_t, x + dx_t]
// is a sum over taps of (phase-j mask row) * (input row shifted by dx_t): no gathers, no upsampled copies.
// Mask rows are split into phases once per channel group and reused by all its channels; input rows get
// r zeros on each side, so out-of-range taps read a zero (that is still multiplied: NaN/inf propagate as in
// the zero-padded reference). grad_masks is the same sum with the roles of M and X taken by dY and X, over the
// channels of a group; grad_features gathers over the taps and phases whose source cell is (h - dy, w - dx).
//
// Every element is summed in a fixed order by one thread: results are deterministic for any thread count.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "backends.h"
#include "cpu/parallel_for.h"
#include "cpu/row_kernels.h"
#include "dtype_dispatch.h"

namespace carafe {
namespace cpu {
namespace {

template <typename T>
struct Tensor4 {
  const T* data;
  Strides s;
  const T* row(int64_t n, int64_t c, int64_t h) const { return data + element_offset(s, n, c, h, 0); }
};

// A scratch buffer of rows that sum_of_products reads (with the slack it may read past the last one).
template <typename A>
std::vector<A> buffer(int64_t size) {
  return std::vector<A>(static_cast<size_t>(size + kRowSlack));
}

// dst[0, pad) = 0, dst[pad + x] = src[x * stride] for x < len, then pad zeros.
template <typename T, typename A>
void load_padded_row(const T* src, int64_t stride, int64_t len, int pad, A* dst) {
  std::fill(dst, dst + pad, A(0));
  if constexpr (std::is_same_v<T, A>) {
    if (stride == 1) {
      std::copy(src, src + len, dst + pad);
      std::fill(dst + pad + len, dst + 2 * pad + len, A(0));
      return;
    }
  }
  for (int64_t x = 0; x < len; ++x) dst[pad + x] = load(src[x * stride]);
  std::fill(dst + pad + len, dst + 2 * pad + len, A(0));
}

// Splits a row of sigma*len values into sigma phase rows of pitch len + 2*pad: row j holds
// src[(sigma*x + j) * stride] at index pad + x, and zeros in its pads.
template <typename T, typename A>
void load_phases(const T* src, int64_t stride, int64_t len, int sigma, int pad, A* dst) {
  const int64_t pitch = len + 2 * pad;
  if constexpr (std::is_same_v<T, A>) {
    if (stride == 1) {
      split_phases(src, len, sigma, dst + pad, pitch);
      for (int j = 0; j < sigma; ++j) {
        std::fill(dst + j * pitch, dst + j * pitch + pad, A(0));
        std::fill(dst + j * pitch + pad + len, dst + (j + 1) * pitch, A(0));
      }
      return;
    }
  }
  for (int j = 0; j < sigma; ++j) load_padded_row(src + j * stride, sigma * stride, len, pad, dst + j * pitch);
}

// The inverse of load_phases (without pads): dst[(sigma*x + j) * stride] = src[j*len + x].
template <typename T, typename A>
void store_phases(const A* src, int64_t len, int sigma, T* dst, int64_t stride) {
  if constexpr (std::is_same_v<T, A>) {
    if (stride == 1) return merge_phases(src, len, len, sigma, dst);
  }
  for (int j = 0; j < sigma; ++j)
    for (int64_t x = 0; x < len; ++x) dst[(sigma * x + j) * stride] = store<T>(src[j * len + x]);
}

int64_t channels_end(const Geometry& g, int64_t group) { return (group + 1) * g.channels_per_group; }

template <typename T>
void forward_rows(const Geometry& g, const Tensor4<T>& x, const Tensor4<T>& m, T* out, Strides os, int64_t begin,
                  int64_t end) {
  using A = accumulate_t<T>;
  const int taps = g.k * g.k, s = g.sigma;
  const int64_t pitch = g.W + 2 * g.r;
  auto mask_phases = buffer<A>(s * taps * s * g.W);  // [i][t][j][x]: row sigma*h + i, tap t, phase j
  auto padded = buffer<A>(g.k * pitch);              // [dy + r][r + x]: input rows h - r .. h + r
  auto phase_out = buffer<A>(s * g.W);               // [j][x]
  std::vector<const A*> a(static_cast<size_t>(taps)), b(static_cast<size_t>(taps));
  for (int64_t task = begin; task < end; ++task) {
    const int64_t n = task / g.H, h = task % g.H;
    for (int64_t group = 0; group < g.G; ++group) {
      for (int i = 0; i < s; ++i)
        for (int t = 0; t < taps; ++t)
          load_phases(m.row(n, mask_channel(group, t, g), h * s + i), m.s.w, g.W, s, 0,
                      mask_phases.data() + (i * taps + t) * s * g.W);
      for (int64_t c = group * g.channels_per_group; c < channels_end(g, group); ++c) {
        for (int dyi = 0; dyi < g.k; ++dyi) {
          A* row = padded.data() + dyi * pitch;
          const int64_t iy = h + dyi - g.r;
          if (inside(iy, g.H)) {
            load_padded_row(x.row(n, c, iy), x.s.w, g.W, g.r, row);
          } else {
            std::fill(row, row + pitch, A(0));
          }
        }
        for (int t = 0; t < taps; ++t) b[t] = padded.data() + (t / g.k) * pitch + t % g.k;
        for (int i = 0; i < s; ++i) {
          for (int j = 0; j < s; ++j) {
            for (int t = 0; t < taps; ++t) a[t] = mask_phases.data() + ((i * taps + t) * s + j) * g.W;
            sum_of_products(phase_out.data() + j * g.W, g.W, taps, a.data(), b.data(), false);
          }
          store_phases(phase_out.data(), g.W, s, out + element_offset(os, n, c, h * s + i, 0), os.w);
        }
      }
    }
  }
}

template <typename T>
void grad_masks_rows(const Geometry& g, const Tensor4<T>& dy, const Tensor4<T>& x, T* out, Strides os,
                     int64_t begin, int64_t end) {
  using A = accumulate_t<T>;
  constexpr int64_t chunk = 32;  // channels whose rows are held at once
  const int taps = g.k * g.k, s = g.sigma;
  const int64_t pitch = g.W + 2 * g.r;
  auto sums = buffer<A>(s * taps * s * g.W);             // [i][t][j][x]
  auto grad_phases = buffer<A>(chunk * s * s * g.W);     // [q][i][j][x]: channel q of the chunk
  auto padded = buffer<A>(chunk * g.k * pitch);          // [q][dy + r][r + x]
  std::vector<const A*> a(static_cast<size_t>(chunk)), b(static_cast<size_t>(chunk));
  for (int64_t task = begin; task < end; ++task) {
    const int64_t n = task / g.H, h = task % g.H;
    for (int64_t group = 0; group < g.G; ++group) {
      const int64_t c_begin = group * g.channels_per_group;
      for (int64_t c0 = c_begin; c0 < channels_end(g, group); c0 += chunk) {
        const int64_t count = std::min(chunk, channels_end(g, group) - c0);
        for (int64_t q = 0; q < count; ++q) {
          for (int i = 0; i < s; ++i)
            load_phases(dy.row(n, c0 + q, h * s + i), dy.s.w, g.W, s, 0, grad_phases.data() + (q * s + i) * s * g.W);
          for (int dyi = 0; dyi < g.k; ++dyi) {
            A* row = padded.data() + (q * g.k + dyi) * pitch;
            const int64_t iy = h + dyi - g.r;
            if (inside(iy, g.H)) {
              load_padded_row(x.row(n, c0 + q, iy), x.s.w, g.W, g.r, row);
            } else {
              std::fill(row, row + pitch, A(0));
            }
          }
        }
        for (int i = 0; i < s; ++i)
          for (int t = 0; t < taps; ++t)
            for (int j = 0; j < s; ++j) {
              for (int64_t q = 0; q < count; ++q) {
                a[q] = grad_phases.data() + ((q * s + i) * s + j) * g.W;
                b[q] = padded.data() + (q * g.k + t / g.k) * pitch + t % g.k;
              }
              sum_of_products(sums.data() + ((i * taps + t) * s + j) * g.W, g.W, int(count), a.data(), b.data(),
                              c0 != c_begin);
            }
      }
      for (int i = 0; i < s; ++i)
        for (int t = 0; t < taps; ++t)
          store_phases(sums.data() + (i * taps + t) * s * g.W, g.W, s,
                       out + element_offset(os, n, mask_channel(group, t, g), h * s + i, 0), os.w);
    }
  }
}

template <typename T>
void grad_features_rows(const Geometry& g, const Tensor4<T>& dy, const Tensor4<T>& m, T* out, Strides os,
                        int64_t begin, int64_t end) {
  using A = accumulate_t<T>;
  const int taps = g.k * g.k, s = g.sigma;
  const int64_t pitch = g.W + 2 * g.r;
  auto mask_phases = buffer<A>(g.k * s * g.k * s * pitch);  // [dy + r][i][dx + r][j][r + x]
  auto grad_phases = buffer<A>(g.k * s * s * pitch);        // [dy + r][i][j][r + x]
  auto sums = buffer<A>(g.W);
  std::vector<const A*> a(static_cast<size_t>(taps * s * s)), b(static_cast<size_t>(taps * s * s));
  for (int64_t task = begin; task < end; ++task) {
    const int64_t n = task / g.H, h = task % g.H;
    // input row h is read through tap row dy by the outputs of source row h - dy
    const int dyi_begin = int(std::max<int64_t>(0, h + g.r - (g.H - 1)));
    const int dyi_end = int(std::min<int64_t>(g.k, h + g.r + 1));
    for (int64_t group = 0; group < g.G; ++group) {
      for (int dyi = dyi_begin; dyi < dyi_end; ++dyi)
        for (int i = 0; i < s; ++i)
          for (int dxi = 0; dxi < g.k; ++dxi)
            load_phases(m.row(n, mask_channel(group, dyi * g.k + dxi, g), (h - dyi + g.r) * s + i), m.s.w, g.W, s,
                        g.r, mask_phases.data() + ((dyi * s + i) * g.k + dxi) * s * pitch);
      for (int64_t c = group * g.channels_per_group; c < channels_end(g, group); ++c) {
        int count = 0;
        for (int dyi = dyi_begin; dyi < dyi_end; ++dyi)
          for (int i = 0; i < s; ++i) {
            A* grad = grad_phases.data() + (dyi * s + i) * s * pitch;
            load_phases(dy.row(n, c, (h - dyi + g.r) * s + i), dy.s.w, g.W, s, g.r, grad);
            // dX[w] += M[.., sigma*(w - dx) + j] * dY[.., sigma*(w - dx) + j]: both rows shifted by -dx
            for (int dxi = 0; dxi < g.k; ++dxi)
              for (int j = 0; j < s; ++j) {
                const int64_t shift = g.r - (dxi - g.r);
                a[count] = mask_phases.data() + (((dyi * s + i) * g.k + dxi) * s + j) * pitch + shift;
                b[count] = grad + j * pitch + shift;
                ++count;
              }
          }
        sum_of_products(sums.data(), g.W, count, a.data(), b.data(), false);
        for (int64_t w = 0; w < g.W; ++w) out[element_offset(os, n, c, h, w)] = store<T>(sums[w]);
      }
    }
  }
}

int64_t row_cost(const Geometry& g) { return g.C * g.sigma * g.sigma * g.W * int64_t(g.k) * g.k; }

}  // namespace

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Tensor4<T> x{static_cast<const T*>(features.data), features.strides};
    const Tensor4<T> m{static_cast<const T*>(masks.data), masks.strides};
    parallel_for(g.N * g.H, device.num_threads, row_cost(g), [&](int64_t begin, int64_t end) {
      forward_rows(g, x, m, static_cast<T*>(output.data), output.strides, begin, end);
    });
  });
}

void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Tensor4<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Tensor4<T> x{static_cast<const T*>(features.data), features.strides};
    const Tensor4<T> m{static_cast<const T*>(masks.data), masks.strides};
    parallel_for(g.N * g.H, device.num_threads, row_cost(g), [&](int64_t begin, int64_t end) {
      grad_features_rows(g, dy, m, static_cast<T*>(grad_features.data), grad_features.strides, begin, end);
    });
    parallel_for(g.N * g.H, device.num_threads, row_cost(g), [&](int64_t begin, int64_t end) {
      grad_masks_rows(g, dy, x, static_cast<T*>(grad_masks.data), grad_masks.strides, begin, end);
    });
  });
}

}  // namespace cpu
}  // namespace carafe
