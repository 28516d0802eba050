// The CUDA backend's kernels as thread programs: each is a struct whose operator()(i) is what GPU thread i
// computes, in host+device code. reassemble_cuda.cu launches them on the GPU; the C++ test
// test_cuda_programs runs the very same programs on the host, thread by thread, against the scalar reference,
// so their index math is checked on every machine, GPU or not.
//
// How the work is split (NCHW and channels_last alike; neighbouring threads take neighbouring columns w):
//
// - Every output pixel's window is centred on one source pixel (h, w), and all outputs of a source pixel (the
//   sigma x sigma block of an integer scale) read the same k x k feature window. The tile programs give a
//   thread a block of up to PY x PX of those outputs, hold their k*k weights in registers, then loop over
//   channels: each feature value loaded is used PY*PX times, each weight C/G times (or a channel slice's).
// - forward: thread (n, group, channel slice, output block) -> Y for those outputs and channels.
// - grad_masks: thread (n, group, output block) sums dY * X over all channels of the group, in order.
// - grad_features: thread (n, group, channel slice, input pixel) holds the weights of every output that reads
//   the pixel (k*k taps x the outputs of each tap's source pixel) and gathers dY over them per channel.
// - The fused normalizer makes the weights from the content encoder's logits (pixel shuffle + softmax) in
//   registers; its backward first writes each output pixel's softmax max and 1/sum to a small workspace
//   (2 numbers per output pixel and group) that grad_features recomputes the weights from.
// - float64, kernel sizes other than 3, 5, 7, grad_features blocks larger than the register tile, and strides
//   too large for 32-bit offsets take element programs: one thread per output element, reassemble_elements.h.
//
// Every output element is written by exactly one thread summing in a fixed order: no atomics, deterministic.
#pragma once

#include <math.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "dtype_dispatch.h"
#include "reassemble_elements.h"

#if defined(__CUDACC__)
#define CARAFE_UNROLL _Pragma("unroll")
#else
#define CARAFE_UNROLL
#endif

namespace carafe {
namespace programs {

CARAFE_HD int64_t min_of(int64_t a, int64_t b) { return a < b ? a : b; }
CARAFE_HD float exponential(float v) { return ::expf(v); }
CARAFE_HD double exponential(double v) { return ::exp(v); }

// The register tile of output pixels per thread for kernel size K: PY x PX outputs of one source pixel.
// Sized so that the PY*PX*K*K weights fit in registers (at most 100).
template <int K>
struct Tile {
  static constexpr int PY = K <= 5 ? 2 : 1;
  static constexpr int PX = 2;
};

// The outputs of source pixel (h, w) that block (qy, qx) of a thread covers: rows oy0 .. oy0 + ny - 1, columns
// ox0 .. ox0 + nx - 1 (ny <= PY, nx <= PX). Empty where the source pixel has fewer outputs.
struct OutputBlock {
  int64_t h, w;  // the source pixel
  int64_t oy0, ox0;
  int ny, nx;
};

template <int PY, int PX>
CARAFE_HD bool output_block(const Geometry& g, int64_t h, int64_t w, int64_t qy, int64_t qx, OutputBlock& b) {
  b.h = h;
  b.w = w;
  b.oy0 = first_output_of(h, g.H, g.OH) + qy * PY;
  b.ox0 = first_output_of(w, g.W, g.OW) + qx * PX;
  const int64_t rows = first_output_of(h + 1, g.H, g.OH) - b.oy0;
  const int64_t cols = first_output_of(w + 1, g.W, g.OW) - b.ox0;
  b.ny = int(rows < PY ? rows : PY);
  b.nx = int(cols < PX ? cols : PX);
  return b.ny > 0 && b.nx > 0;
}

// The most outputs any source row (column) has: ceil(OH / H).
inline int64_t max_outputs(int64_t in, int64_t out) { return (out + in - 1) / in; }

template <typename T>
using acc = accumulate_t<T>;

// ---- where the weights come from ------------------------------------------------------------------------------

// The masks as given: M[n, group*k*k + t, oy, ox]. grad is where grad_masks goes (backward only).
template <typename T>
struct GivenMasks {
  Operands<T> masks;
  T* grad;
  Strides grad_strides;

  template <int K, int PY, int PX>
  CARAFE_HD void load(const Geometry& g, int64_t n, int64_t group, const OutputBlock& b,
                      acc<T> (&weight)[PY][PX][K * K]) const {
    CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
      CARAFE_UNROLL for (int t = 0; t < K * K; ++t) weight[py][px][t] =
          (py < b.ny && px < b.nx) ? masks.at(n, mask_channel(group, t, g), b.oy0 + py, b.ox0 + px) : acc<T>(0);
  }

  template <int K, int PY, int PX>
  CARAFE_HD void store_gradient(const Geometry& g, int64_t n, int64_t group, const OutputBlock& b,
                                const acc<T> (&grad_weight)[PY][PX][K * K]) const {
    CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px) {
      if (py >= b.ny || px >= b.nx) continue;
      CARAFE_UNROLL for (int t = 0; t < K * K; ++t)
        grad[element_offset(grad_strides, n, mask_channel(group, t, g), b.oy0 + py, b.ox0 + px)] =
            store<T>(grad_weight[py][px][t]);
    }
  }
};

// The content encoder's logits L (N, sigma^2*k*k*G, H, W): the weight of tap t at output (oy, ox) is
// softmax_t L[n, (group*k*k + t)*sigma^2 + (oy % sigma)*sigma + ox % sigma, oy / sigma, ox / sigma].
// grad is where grad_logits goes (backward only).
template <typename T>
struct EncoderLogits {
  Operands<T> logits;
  T* grad;
  Strides grad_strides;

  CARAFE_HD int64_t channel(const Geometry& g, int64_t mc, int64_t oy, int64_t ox) const {
    return (mc * g.sigma + oy % g.sigma) * g.sigma + ox % g.sigma;
  }
  CARAFE_HD acc<T> logit(const Geometry& g, int64_t n, int64_t mc, int64_t oy, int64_t ox) const {
    return logits.at(n, channel(g, mc, oy, ox), oy / g.sigma, ox / g.sigma);
  }
  // the same, for an output (oy, ox) of source pixel (h, w) (oy = sigma*h + i, ox = sigma*w + j): no divisions
  CARAFE_HD acc<T> logit_of(const Geometry& g, int64_t n, int64_t mc, int64_t h, int64_t w, int64_t oy,
                            int64_t ox) const {
    return logits.at(n, (mc * g.sigma + oy - g.sigma * h) * g.sigma + ox - g.sigma * w, h, w);
  }

  // the max and 1/sum of exp(logit - max) over the taps first .. first + k*k - 1 of output (oy, ox)
  CARAFE_HD void softmax_stats(const Geometry& g, int64_t n, int64_t first, int64_t oy, int64_t ox, acc<T>& top,
                               acc<T>& inverse) const {
    const int taps = g.k * g.k;
    top = logit(g, n, first, oy, ox);
    for (int t = 1; t < taps; ++t) {
      const acc<T> v = logit(g, n, first + t, oy, ox);
      top = top < v ? v : top;
    }
    acc<T> sum = 0;
    for (int t = 0; t < taps; ++t) sum += exponential(logit(g, n, first + t, oy, ox) - top);
    inverse = acc<T>(1) / sum;
  }

  // softmax over the taps of one output pixel, in place; the max is subtracted first
  template <int KK>
  CARAFE_HD static void softmax(acc<T> (&v)[KK]) {
    acc<T> top = v[0];
    CARAFE_UNROLL for (int t = 1; t < KK; ++t) top = top < v[t] ? v[t] : top;
    acc<T> sum = 0;
    CARAFE_UNROLL for (int t = 0; t < KK; ++t) sum += v[t] = exponential(v[t] - top);
    const acc<T> inverse = acc<T>(1) / sum;
    CARAFE_UNROLL for (int t = 0; t < KK; ++t) v[t] *= inverse;
  }

  // the softmax weights of output (oy, ox) of the block's source pixel
  template <int KK>
  CARAFE_HD void load_pixel(const Geometry& g, int64_t n, int64_t group, const OutputBlock& b, int64_t oy,
                            int64_t ox, acc<T> (&weight)[KK]) const {
    CARAFE_UNROLL for (int t = 0; t < KK; ++t) weight[t] = logit_of(g, n, mask_channel(group, t, g), b.h, b.w, oy, ox);
    softmax(weight);
  }

  template <int K, int PY, int PX>
  CARAFE_HD void load(const Geometry& g, int64_t n, int64_t group, const OutputBlock& b,
                      acc<T> (&weight)[PY][PX][K * K]) const {
    CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px) {
      if (py < b.ny && px < b.nx) {
        load_pixel(g, n, group, b, b.oy0 + py, b.ox0 + px, weight[py][px]);
      } else {
        CARAFE_UNROLL for (int t = 0; t < K * K; ++t) weight[py][px][t] = acc<T>(0);
      }
    }
  }

  // dL/dlogit_t = p_t * (dM_t - sum_u p_u dM_u), with p recomputed one output pixel at a time
  template <int K, int PY, int PX>
  CARAFE_HD void store_gradient(const Geometry& g, int64_t n, int64_t group, const OutputBlock& b,
                                const acc<T> (&grad_weight)[PY][PX][K * K]) const {
    CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px) {
      if (py >= b.ny || px >= b.nx) continue;
      const int64_t oy = b.oy0 + py, ox = b.ox0 + px;
      acc<T> p[K * K];
      load_pixel(g, n, group, b, oy, ox, p);
      acc<T> dot = 0;
      CARAFE_UNROLL for (int t = 0; t < K * K; ++t) dot += p[t] * grad_weight[py][px][t];
      CARAFE_UNROLL for (int t = 0; t < K * K; ++t) {
        const int64_t c = (mask_channel(group, t, g) * g.sigma + oy - g.sigma * b.h) * g.sigma + ox - g.sigma * b.w;
        grad[element_offset(grad_strides, n, c, b.h, b.w)] = store<T>(p[t] * (grad_weight[py][px][t] - dot));
      }
    }
  }
};

// Softmax statistics of the fused normalizer's backward: max and 1/sum over the taps of each output pixel and
// group, acc<T> values at [which][n][group][oy][ox] (which 0: max, 1: 1/sum).
template <typename A>
struct SoftmaxStats {
  A* data;
  int64_t count;  // N * G * OH * OW

  CARAFE_HD int64_t index(const Geometry& g, int64_t n, int64_t group, int64_t oy, int64_t ox) const {
    return ((n * g.G + group) * g.OH + oy) * g.OW + ox;
  }
  static int64_t bytes(const Geometry& g) { return 2 * g.N * g.G * g.OH * g.OW * int64_t(sizeof(A)); }
};

// The normalized masks, recomputed from the logits and the softmax statistics: what grad_features reads in the
// fused backward (an accessor like Operands, so element programs take it too).
template <typename T>
struct MasksFromStats {
  Geometry g;
  EncoderLogits<T> source;
  SoftmaxStats<acc<T>> stats;

  CARAFE_HD acc<T> at(int64_t n, int64_t mc, int64_t oy, int64_t ox) const {
    const int64_t i = stats.index(g, n, mc / (int64_t(g.k) * g.k), oy, ox);
    return exponential(source.logit(g, n, mc, oy, ox) - stats.data[i]) * stats.data[stats.count + i];
  }
  // the same, for tap t of group `group` at an output of source pixel (h, w): no divisions
  CARAFE_HD acc<T> at(int64_t n, int64_t group, int t, int64_t h, int64_t w, int64_t oy, int64_t ox) const {
    const int64_t i = stats.index(g, n, group, oy, ox);
    return exponential(source.logit_of(g, n, mask_channel(group, t, g), h, w, oy, ox) - stats.data[i]) *
           stats.data[stats.count + i];
  }
};

// The weight of tap t of `group` at output (oy, ox) of source pixel (h, w), from either kind of masks.
template <typename T>
CARAFE_HD acc<T> weight_at(const Operands<T>& masks, const Geometry& g, int64_t n, int64_t group, int t, int64_t,
                           int64_t, int64_t oy, int64_t ox) {
  return masks.at(n, mask_channel(group, t, g), oy, ox);
}
template <typename T>
CARAFE_HD acc<T> weight_at(const MasksFromStats<T>& masks, const Geometry&, int64_t n, int64_t group, int t,
                           int64_t h, int64_t w, int64_t oy, int64_t ox) {
  return masks.at(n, group, t, h, w, oy, ox);
}

// ---- tile programs --------------------------------------------------------------------------------------------
// Inside their channel loops the tile programs address elements by 32-bit offsets from one reference element
// per channel, so that registers hold weights and sums rather than 64-bit addresses. offsets_fit() checks that
// no offset can overflow; tensors with strides too large for that take the element programs.

struct Offset32 {
  int h, w;
  CARAFE_HD explicit Offset32(const Strides& s) : h(int(s.h)), w(int(s.w)) {}
  CARAFE_HD int operator()(int64_t dy, int64_t dx) const { return int(dy) * h + int(dx) * w; }
};

// Whether every tile program offset (at most `reach` rows and columns from the reference) fits in 32 bits.
inline bool offsets_fit(const Geometry& g, std::initializer_list<Strides> tensors) {
  const int64_t reach = (g.k + 2) * std::max<int64_t>({1, max_outputs(g.H, g.OH), max_outputs(g.W, g.OW)});
  for (const Strides& s : tensors)
    if (reach * ((s.h < 0 ? -s.h : s.h) + (s.w < 0 ? -s.w : s.w)) >= (int64_t(1) << 31)) return false;
  return true;
}

// Thread i of a tile program: source pixel (h, w) fastest (neighbouring threads, neighbouring columns), then
// output block (qy, qx), channel slice, group, batch.
struct TileIndex {
  int64_t n, group, slice, h, w, qy, qx;
};
struct TileGrid {
  int64_t blocks_y, blocks_x, slices;

  int64_t threads(const Geometry& g) const { return g.N * g.G * slices * blocks_y * blocks_x * g.H * g.W; }
  CARAFE_HD TileIndex index(const Geometry& g, int64_t i) const {
    TileIndex t;
    t.w = i % g.W; i /= g.W;
    t.h = i % g.H; i /= g.H;
    t.qx = i % blocks_x; i /= blocks_x;
    t.qy = i % blocks_y; i /= blocks_y;
    t.slice = i % slices; i /= slices;
    t.group = i % g.G;
    t.n = i / g.G;
    return t;
  }
};

// The blocks of PY x PX outputs that cover the outputs of any source pixel.
template <int PY, int PX>
TileGrid tile_grid(const Geometry& g, int64_t slices) {
  return {(max_outputs(g.H, g.OH) + PY - 1) / PY, (max_outputs(g.W, g.OW) + PX - 1) / PX, slices};
}

// Which rows and columns of the k x k window around (h, w) lie inside the features.
template <int K>
CARAFE_HD void window_inside(const Geometry& g, int64_t h, int64_t w, bool (&rows)[K], bool (&cols)[K]) {
  CARAFE_UNROLL for (int a = 0; a < K; ++a) {
    rows[a] = inside(h + a - K / 2, g.H);
    cols[a] = inside(w + a - K / 2, g.W);
  }
}

// Y for the outputs of one block and the channels of one slice.
template <typename T, int K, typename Weights>
struct ForwardTile {
  static constexpr int PY = Tile<K>::PY, PX = Tile<K>::PX;
  Geometry g;
  Operands<T> features;
  Weights weights;
  T* out;
  Strides out_strides;
  TileGrid grid;
  int64_t slice_len;

  int64_t threads() const { return grid.threads(g); }

  CARAFE_HD void operator()(int64_t i) const {
    const TileIndex t = grid.index(g, i);
    const int64_t n = t.n, group = t.group, h = t.h, w = t.w;
    OutputBlock b;
    if (!output_block<PY, PX>(g, h, w, t.qy, t.qx, b)) return;
    const int64_t c_begin = group * g.channels_per_group + t.slice * slice_len;
    const int64_t c_end = min_of(c_begin + slice_len, (group + 1) * g.channels_per_group);
    acc<T> weight[PY][PX][K * K];
    weights.template load<K, PY, PX>(g, n, group, b, weight);
    bool row_inside[K], col_inside[K];
    window_inside(g, h, w, row_inside, col_inside);
    const Offset32 x_at(features.strides), y_at(out_strides);
    for (int64_t c = c_begin; c < c_end; ++c) {
      const T* centre = features.data + element_offset(features.strides, n, c, h, w);
      acc<T> sum[PY][PX] = {};
      CARAFE_UNROLL for (int a = 0; a < K; ++a) {
        const T* row = centre + x_at(a - K / 2, 0);
        CARAFE_UNROLL for (int d = 0; d < K; ++d) {
          const acc<T> v = (row_inside[a] && col_inside[d]) ? load(row[x_at(0, d - K / 2)]) : acc<T>(0);
          CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
            sum[py][px] += weight[py][px][a * K + d] * v;
        }
      }
      T* block = out + element_offset(out_strides, n, c, b.oy0, b.ox0);
      CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
        if (py < b.ny && px < b.nx) block[y_at(py, px)] = store<T>(sum[py][px]);
    }
  }
};

// dL/dM (handed to the weights' source, which stores it or turns it into dL/dlogits) for one output block,
// summed over every channel of the group in order.
template <typename T, int K, typename Weights>
struct GradMasksTile {
  static constexpr int PY = Tile<K>::PY, PX = Tile<K>::PX;
  Geometry g;
  Operands<T> grad_output, features;
  Weights weights;
  TileGrid grid;  // one slice: every channel of the group

  int64_t threads() const { return grid.threads(g); }

  CARAFE_HD void operator()(int64_t i) const {
    const TileIndex t = grid.index(g, i);
    const int64_t n = t.n, group = t.group, h = t.h, w = t.w;
    OutputBlock b;
    if (!output_block<PY, PX>(g, h, w, t.qy, t.qx, b)) return;
    acc<T> sum[PY][PX][K * K] = {};
    bool row_inside[K], col_inside[K];
    window_inside(g, h, w, row_inside, col_inside);
    const Offset32 x_at(features.strides), dy_at(grad_output.strides);
    const int64_t c_end = (group + 1) * g.channels_per_group;
    for (int64_t c = group * g.channels_per_group; c < c_end; ++c) {
      const T* centre = features.data + element_offset(features.strides, n, c, h, w);
      const T* block = grad_output.data + element_offset(grad_output.strides, n, c, b.oy0, b.ox0);
      acc<T> dy[PY][PX];
      CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
        dy[py][px] = (py < b.ny && px < b.nx) ? load(block[dy_at(py, px)]) : acc<T>(0);
      CARAFE_UNROLL for (int a = 0; a < K; ++a) {
        const T* row = centre + x_at(a - K / 2, 0);
        CARAFE_UNROLL for (int d = 0; d < K; ++d) {
          const acc<T> v = (row_inside[a] && col_inside[d]) ? load(row[x_at(0, d - K / 2)]) : acc<T>(0);
          CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
            sum[py][px][a * K + d] += dy[py][px] * v;
        }
      }
    }
    weights.template store_gradient<K, PY, PX>(g, n, group, b, sum);
  }
};

// dL/dX for one input pixel and the channels of one slice. Needs every source pixel's outputs to fit the tile
// (max_outputs <= PY, PX); the weights of all K*K x PY x PX (tap, output) pairs are loaded once.
template <typename T, int K, typename Masks>
struct GradFeaturesTile {
  static constexpr int PY = Tile<K>::PY, PX = Tile<K>::PX;
  Geometry g;
  Operands<T> grad_output;
  Masks masks;
  T* out;
  Strides out_strides;
  int64_t slices, slice_len;

  int64_t threads() const { return g.N * g.G * slices * g.H * g.W; }
  static bool fits(const Geometry& g) { return max_outputs(g.H, g.OH) <= PY && max_outputs(g.W, g.OW) <= PX; }

  CARAFE_HD void operator()(int64_t i) const {
    const int64_t w = i % g.W; i /= g.W;
    const int64_t h = i % g.H; i /= g.H;
    const int64_t slice = i % slices; i /= slices;
    const int64_t group = i % g.G, n = i / g.G;
    const int64_t c_begin = group * g.channels_per_group + slice * slice_len;
    const int64_t c_end = min_of(c_begin + slice_len, (group + 1) * g.channels_per_group);
    if (c_begin >= c_end) return;
    // tap row a reads (h, .) from the outputs of source row h - (a - r): rows oy[a] .. oy[a] + ny[a] - 1
    // dY is read relative to the first output of (h, w) itself
    const int64_t oy_ref = first_output_of(h, g.H, g.OH), ox_ref = first_output_of(w, g.W, g.OW);
    int64_t oy[K], ox[K];
    int ny[K], nx[K];
    const int64_t sy0 = h + K / 2, sx0 = w + K / 2;  // source row (column) of tap row (column) a: sy0 - a
    CARAFE_UNROLL for (int a = 0; a < K; ++a) {
      // taps outside the image read nothing (ny, nx 0); they get the reference position, so that even their
      // unused 32-bit row offsets below stay small
      const int64_t sy = h - (a - K / 2), sx = w - (a - K / 2);
      oy[a] = inside(sy, g.H) ? first_output_of(sy, g.H, g.OH) : oy_ref;
      ny[a] = inside(sy, g.H) ? int(first_output_of(sy + 1, g.H, g.OH) - oy[a]) : 0;
      ox[a] = inside(sx, g.W) ? first_output_of(sx, g.W, g.OW) : ox_ref;
      nx[a] = inside(sx, g.W) ? int(first_output_of(sx + 1, g.W, g.OW) - ox[a]) : 0;
    }
    acc<T> weight[K * K][PY][PX];
    CARAFE_UNROLL for (int a = 0; a < K; ++a) CARAFE_UNROLL for (int d = 0; d < K; ++d)
      CARAFE_UNROLL for (int py = 0; py < PY; ++py) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
        weight[a * K + d][py][px] = (py < ny[a] && px < nx[d])
            ? weight_at(masks, g, n, group, a * K + d, sy0 - a, sx0 - d, oy[a] + py, ox[d] + px) : acc<T>(0);
    int ry[K], rx[K];
    CARAFE_UNROLL for (int a = 0; a < K; ++a) {
      ry[a] = int(oy[a] - oy_ref);
      rx[a] = int(ox[a] - ox_ref);
    }
    const Offset32 dy_at(grad_output.strides);
    for (int64_t c = c_begin; c < c_end; ++c) {
      const T* ref = grad_output.data + element_offset(grad_output.strides, n, c, oy_ref, ox_ref);
      acc<T> sum = 0;
      CARAFE_UNROLL for (int a = 0; a < K; ++a) CARAFE_UNROLL for (int py = 0; py < PY; ++py) {
        const T* row = ref + dy_at(ry[a] + py, 0);
        CARAFE_UNROLL for (int d = 0; d < K; ++d) CARAFE_UNROLL for (int px = 0; px < PX; ++px)
          if (py < ny[a] && px < nx[d]) sum += weight[a * K + d][py][px] * load(row[dy_at(0, rx[d] + px)]);
      }
      out[element_offset(out_strides, n, c, h, w)] = store<T>(sum);
    }
  }
};

// Softmax statistics (max, 1/sum) of every output pixel and group, for the fused backward.
template <typename T>
struct SoftmaxStatsProgram {
  Geometry g;
  EncoderLogits<T> source;
  SoftmaxStats<acc<T>> stats;

  int64_t threads() const { return stats.count; }

  CARAFE_HD void operator()(int64_t i) const {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, group = (i / (g.OW * g.OH)) % g.G;
    const int64_t n = i / (g.OW * g.OH * g.G);
    acc<T> top, inverse;
    source.softmax_stats(g, n, mask_channel(group, 0, g), oy, ox, top, inverse);
    stats.data[i] = top;
    stats.data[stats.count + i] = inverse;
  }
};

// ---- element programs (any kernel size) -----------------------------------------------------------------------

// out[a, b, c, d] = element(a, b, c, d) over an (A, B, C, D) grid, d fastest.
template <typename T, typename Element>
struct FillElements {
  int64_t A, B, C, D;
  T* out;
  Strides out_strides;
  Element element;

  int64_t threads() const { return A * B * C * D; }
  CARAFE_HD void operator()(int64_t i) const {
    const Index4 x = unflatten(i, B, C, D);
    out[element_offset(out_strides, x.a, x.b, x.c, x.d)] = store<T>(element(x.a, x.b, x.c, x.d));
  }
};

template <typename T, typename Masks>
struct ForwardElement {
  Geometry g;
  Operands<T> features;
  Masks masks;
  CARAFE_HD acc<T> operator()(int64_t n, int64_t c, int64_t oy, int64_t ox) const {
    return forward_element(g, features, masks, n, c, oy, ox);
  }
};

template <typename T, typename Masks>
struct GradFeatureElement {
  Geometry g;
  Operands<T> grad_output;
  Masks masks;
  CARAFE_HD acc<T> operator()(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return grad_feature_element(g, grad_output, masks, n, c, h, w);
  }
};

template <typename T>
struct GradMaskElement {
  Geometry g;
  Operands<T> grad_output, features;
  CARAFE_HD acc<T> operator()(int64_t n, int64_t mc, int64_t oy, int64_t ox) const {
    return grad_mask_element(g, grad_output, features, n, mc, oy, ox);
  }
};

// The fused normalizer's forward for any kernel size: the softmax of the output pixel's taps, then the sum.
template <typename T>
struct ForwardNormalizedElement {
  Geometry g;
  Operands<T> features;
  EncoderLogits<T> source;
  CARAFE_HD acc<T> operator()(int64_t n, int64_t c, int64_t oy, int64_t ox) const {
    SoftmaxOfPixel softmax{this, n, oy, ox, 0, 0};
    source.softmax_stats(g, n, mask_channel(group_of_channel(c, g), 0, g), oy, ox, softmax.top, softmax.inverse);
    return forward_element(g, features, softmax, n, c, oy, ox);
  }
  // the weights of one output pixel as a masks accessor (forward_element asks only for that pixel's taps)
  struct SoftmaxOfPixel {
    const ForwardNormalizedElement* self;
    int64_t n, oy, ox;
    acc<T> top, inverse;
    CARAFE_HD acc<T> at(int64_t, int64_t mc, int64_t, int64_t) const {
      return exponential(self->source.logit(self->g, n, mc, oy, ox) - top) * inverse;
    }
  };
};

// The fused normalizer's dL/dlogits for any kernel size: thread (n, group, oy, ox) computes dL/dM of each tap
// twice (once for the dot product of the softmax backward, once for the result) rather than holding k*k values.
template <typename T>
struct GradLogitsElement {
  Geometry g;
  Operands<T> grad_output, features;
  MasksFromStats<T> masks;
  T* grad;
  Strides grad_strides;

  int64_t threads() const { return g.N * g.G * g.OH * g.OW; }
  CARAFE_HD void operator()(int64_t i) const {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, group = (i / (g.OW * g.OH)) % g.G;
    const int64_t n = i / (g.OW * g.OH * g.G);
    const int64_t first = mask_channel(group, 0, g);
    const int taps = g.k * g.k;
    acc<T> dot = 0;
    for (int t = 0; t < taps; ++t)
      dot += masks.at(n, first + t, oy, ox) * grad_mask_element(g, grad_output, features, n, first + t, oy, ox);
    for (int t = 0; t < taps; ++t) {
      const acc<T> dm = grad_mask_element(g, grad_output, features, n, first + t, oy, ox);
      const int64_t c = masks.source.channel(g, first + t, oy, ox);
      grad[element_offset(grad_strides, n, c, oy / g.sigma, ox / g.sigma)] =
          store<T>(masks.at(n, first + t, oy, ox) * (dm - dot));
    }
  }
};

// ---- dispatch -------------------------------------------------------------------------------------------------
// An executor runs a program: `executor(program)` runs program(i) for every i < program.threads() (a kernel
// launch on the GPU, a loop on the host), and `executor.target_threads` is how many threads it wants in flight,
// which sets how finely channels are sliced.

// Tile programs exist for the kernel sizes of practice (3, 5, 7) in the dtypes of training (float32, float16,
// bfloat16); float64 (for gradcheck) and other sizes take the element programs, which keeps the build short.
template <typename T, typename Fn>
void dispatch_kernel_size(int k, Fn&& fn) {
  if constexpr (std::is_same_v<T, double>) {
    fn(std::integral_constant<int, 0>{});
  } else {
    switch (k) {
      case 3: return fn(std::integral_constant<int, 3>{});
      case 5: return fn(std::integral_constant<int, 5>{});
      case 7: return fn(std::integral_constant<int, 7>{});
      default: return fn(std::integral_constant<int, 0>{});  // element programs
    }
  }
}

// Channel slices of a group: enough threads for the executor, each slice at least 8 channels where possible.
struct Slicing {
  int64_t slices, slice_len;
};
inline Slicing slice_channels(const Geometry& g, int64_t threads_per_slice, int64_t target_threads) {
  const int64_t wanted = (target_threads + threads_per_slice - 1) / std::max<int64_t>(1, threads_per_slice);
  const int64_t most = std::max<int64_t>(1, g.channels_per_group / 8);
  const int64_t slices = std::max<int64_t>(1, std::min(wanted, most));
  const int64_t len = (g.channels_per_group + slices - 1) / slices;
  return {(g.channels_per_group + len - 1) / len, len};
}

template <typename T, typename Weights, typename Executor>
void run_forward(const Geometry& g, const Operands<T>& x, const Weights& weights, TensorRef output, Executor& ex) {
  T* out = static_cast<T*>(output.data);
  dispatch_kernel_size<T>(g.k, [&](auto k_tag) {
    constexpr int K = decltype(k_tag)::value;
    if constexpr (K != 0) {
      if (offsets_fit(g, {x.strides, output.strides})) {
        using Program = ForwardTile<T, K, Weights>;
        TileGrid grid = tile_grid<Program::PY, Program::PX>(g, 1);
        const Slicing s = slice_channels(g, grid.threads(g), ex.target_threads);
        grid.slices = s.slices;
        return ex(Program{g, x, weights, out, output.strides, grid, s.slice_len});
      }
    }
    if constexpr (std::is_same_v<Weights, GivenMasks<T>>) {
      ex(FillElements<T, ForwardElement<T, Operands<T>>>{g.N, g.C, g.OH, g.OW, out, output.strides,
                                                          {g, x, weights.masks}});
    } else {
      ex(FillElements<T, ForwardNormalizedElement<T>>{g.N, g.C, g.OH, g.OW, out, output.strides, {g, x, weights}});
    }
  });
}

template <typename T, typename Masks, typename Executor>
void run_grad_features(const Geometry& g, const Operands<T>& dy, const Masks& masks, TensorRef grad_features,
                       Executor& ex) {
  T* out = static_cast<T*>(grad_features.data);
  dispatch_kernel_size<T>(g.k, [&](auto k_tag) {
    constexpr int K = decltype(k_tag)::value;
    if constexpr (K != 0 && K <= 5) {  // at K 7 the weights of a sigma-2 pixel (196) do not fit in registers
      using Program = GradFeaturesTile<T, K, Masks>;
      if (Program::fits(g) && offsets_fit(g, {dy.strides})) {
        const Slicing s = slice_channels(g, g.N * g.G * g.H * g.W, ex.target_threads);
        return ex(Program{g, dy, masks, out, grad_features.strides, s.slices, s.slice_len});
      }
    }
    ex(FillElements<T, GradFeatureElement<T, Masks>>{g.N, g.C, g.H, g.W, out, grad_features.strides,
                                                     {g, dy, masks}});
  });
}

// grad_masks (weights: GivenMasks) or grad_logits (weights: EncoderLogits, whose element path needs the masks
// recomputed from the softmax statistics, normalized)
template <typename T, typename Weights, typename Executor>
void run_grad_masks(const Geometry& g, const Operands<T>& dy, const Operands<T>& x, const Weights& weights,
                    const MasksFromStats<T>* normalized, Executor& ex) {
  dispatch_kernel_size<T>(g.k, [&](auto k_tag) {
    constexpr int K = decltype(k_tag)::value;
    if constexpr (K != 0) {
      if (offsets_fit(g, {x.strides, dy.strides})) {
        using Program = GradMasksTile<T, K, Weights>;
        return ex(Program{g, dy, x, weights, tile_grid<Program::PY, Program::PX>(g, 1)});
      }
    }
    if constexpr (std::is_same_v<Weights, GivenMasks<T>>) {
      ex(FillElements<T, GradMaskElement<T>>{g.N, int64_t(g.G) * g.k * g.k, g.OH, g.OW, weights.grad,
                                             weights.grad_strides, {g, dy, x}});
    } else {
      ex(GradLogitsElement<T>{g, dy, x, *normalized, weights.grad, weights.grad_strides});
    }
  });
}

template <typename Executor>
void reassemble_forward(const Problem& problem, ConstTensorRef features, ConstTensorRef masks, TensorRef output,
                        Executor& ex) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const GivenMasks<T> m{{static_cast<const T*>(masks.data), masks.strides}, nullptr, {}};
    run_forward(g, x, m, output, ex);
  });
}

template <typename Executor>
void reassemble_backward(const Problem& problem, ConstTensorRef grad_output, ConstTensorRef features,
                         ConstTensorRef masks, TensorRef grad_features, TensorRef grad_masks, Executor& ex) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const GivenMasks<T> m{{static_cast<const T*>(masks.data), masks.strides}, static_cast<T*>(grad_masks.data),
                          grad_masks.strides};
    run_grad_features(g, dy, m.masks, grad_features, ex);
    run_grad_masks(g, dy, x, m, static_cast<const MasksFromStats<T>*>(nullptr), ex);
  });
}

template <typename Executor>
void reassemble_normalized_forward(const Problem& problem, ConstTensorRef features, ConstTensorRef logits,
                                   TensorRef output, Executor& ex) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const EncoderLogits<T> l{{static_cast<const T*>(logits.data), logits.strides}, nullptr, {}};
    run_forward(g, x, l, output, ex);
  });
}

// Bytes of workspace the fused normalizer's backward needs: the softmax statistics.
inline int64_t normalized_backward_workspace_bytes(const Problem& problem) {
  const Geometry g = Geometry::of(problem);
  return problem.dtype == DType::Float64 ? SoftmaxStats<double>::bytes(g) : SoftmaxStats<float>::bytes(g);
}

template <typename Executor>
void reassemble_normalized_backward(const Problem& problem, ConstTensorRef grad_output, ConstTensorRef features,
                                    ConstTensorRef logits, TensorRef grad_features, TensorRef grad_logits,
                                    void* workspace, Executor& ex) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const EncoderLogits<T> l{{static_cast<const T*>(logits.data), logits.strides}, static_cast<T*>(grad_logits.data),
                             grad_logits.strides};
    const SoftmaxStats<acc<T>> stats{static_cast<acc<T>*>(workspace), g.N * g.G * g.OH * g.OW};
    const MasksFromStats<T> masks{g, l, stats};
    ex(SoftmaxStatsProgram<T>{g, l, stats});
    run_grad_features(g, dy, masks, grad_features, ex);
    run_grad_masks(g, dy, x, l, &masks, ex);
  });
}

}  // namespace programs
}  // namespace carafe
