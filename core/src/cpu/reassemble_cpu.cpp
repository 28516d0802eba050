// CPU backend. Work is split over threads by input rows (n, h); within a row, every hot loop is
// sum_of_products (row_kernels.h) over contiguous accumulation-type rows, which runs at SIMD speed.
//
// The trick that makes the rows contiguous is to split each output row by phase: when the output columns map
// to their source columns as ox -> ox / s (s = sigma; this also covers an FPN's odd sizes, e.g. 25 -> 49),
// output column s*x + j belongs to phase j and source column x. Within one phase,
//   Y[oy, s*x + j] = sum_t M_t[oy, s*x + j] * X[source(oy) + dy_t, x + dx_t]
// is a sum over taps of (phase-j mask row) * (input row shifted by dx_t): no gathers, no upsampled copies.
// Mask rows are split into phases once per channel group and reused by all its channels; input rows get
// r zeros on each side, so out-of-range taps read a zero (that is still multiplied: NaN/inf propagate as in
// the zero-padded reference). grad_masks is the same sum with the roles of M and X taken by dY and X, over the
// channels of a group; grad_features gathers over the taps and phases whose source cell is (h - dy, w - dx).
// Output rows can map to input rows in any way (each task takes the output rows whose source is its row).
// Column mappings without that phase structure (rare sizes) take the per-element path of reassemble_elements.h.
//
// Every element is summed in a fixed order by one thread: results are deterministic for any thread count.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backends.h"
#include "cpu/parallel_for.h"
#include "cpu/row_kernels.h"
#include "dtype_dispatch.h"
#include "reassemble_elements.h"

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

// The number of phases s when every output column ox < out has source column ox / s (and 0 when the
// mapping from in to out columns is not of that form).
int64_t column_phases(int64_t in, int64_t out) {
  const int64_t s = (out + in - 1) / in;
  for (int64_t o = 0; o < out; ++o)
    if (source_coord(o, in, out) != o / s) return 0;
  return s;
}

// The output rows [first, end) whose source is input row h.
struct RowRange {
  int64_t first, end;
  int64_t count() const { return end - first; }
};
RowRange output_rows(const Geometry& g, int64_t h) {
  return {first_output_of(h, g.H, g.OH), first_output_of(h + 1, g.H, g.OH)};
}
int64_t max_output_rows(const Geometry& g) { return (g.OH + g.H - 1) / g.H; }

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

// Splits a row of `valid` <= s*len values into s phase rows of pitch len + 2*pad: row j holds
// src[(s*x + j) * stride] at index pad + x (zero where s*x + j >= valid), and zeros in its pads.
template <typename T, typename A>
void load_phases(const T* src, int64_t stride, int64_t len, int64_t s, int64_t valid, int pad, A* dst) {
  const int64_t pitch = len + 2 * pad;
  if constexpr (std::is_same_v<T, A>) {
    if (stride == 1 && valid == s * len) {
      split_phases(src, len, int(s), dst + pad, pitch);
      for (int64_t j = 0; j < s; ++j) {
        std::fill(dst + j * pitch, dst + j * pitch + pad, A(0));
        std::fill(dst + j * pitch + pad + len, dst + (j + 1) * pitch, A(0));
      }
      return;
    }
  }
  for (int64_t j = 0; j < s; ++j) {
    A* row = dst + j * pitch;
    std::fill(row, row + pitch, A(0));
    for (int64_t x = 0; x < len && s * x + j < valid; ++x) row[pad + x] = load(src[(s * x + j) * stride]);
  }
}

// The inverse of load_phases (without pads): dst[(s*x + j) * stride] = src[j*len + x] where s*x + j < valid.
template <typename T, typename A>
void store_phases(const A* src, int64_t len, int64_t s, int64_t valid, T* dst, int64_t stride) {
  if constexpr (std::is_same_v<T, A>) {
    if (stride == 1 && valid == s * len) return merge_phases(src, len, len, int(s), dst);
  }
  for (int64_t j = 0; j < s; ++j)
    for (int64_t x = 0; x < len && s * x + j < valid; ++x) dst[(s * x + j) * stride] = store<T>(src[j * len + x]);
}

template <typename T, typename A>
void store_row(const A* src, int64_t len, T* dst, int64_t stride) {
  for (int64_t x = 0; x < len; ++x) dst[x * stride] = store<T>(src[x]);
}

// Input rows padded with r zeros on each side, kept for the k consecutive input rows whose windows read them: a
// ring of k slots, each holding one input row of every channel ([c][r + x], pitch W + 2r; slot iy % k holds row
// iy), plus a slot of zeros standing for rows outside the image. A thread's task rows are consecutive, so each
// input row is loaded once (plus r rows at each end of its range) instead of k times.
template <typename T, typename A>
class PaddedRowRing {
 public:
  PaddedRowRing(const Geometry& g, const Tensor4<T>& x)
      : g_(g), x_(x), pitch_(g.W + 2 * g.r), slot_(g.C * pitch_), rows_(buffer<A>((g.k + 1) * slot_)),
        held_(static_cast<size_t>(g.k), -1) {
    std::fill(rows_.begin() + g.k * slot_, rows_.end(), A(0));
  }
  int64_t pitch() const { return pitch_; }
  // input row iy of image n, every channel: [c][r + x]
  const A* row(int64_t n, int64_t iy) {
    if (!inside(iy, g_.H)) return rows_.data() + g_.k * slot_;
    const int64_t slot = iy % g_.k;
    A* dst = rows_.data() + slot * slot_;
    if (held_[size_t(slot)] != n * g_.H + iy) {
      held_[size_t(slot)] = n * g_.H + iy;
      for (int64_t c = 0; c < g_.C; ++c) load_padded_row(x_.row(n, c, iy), x_.s.w, g_.W, g_.r, dst + c * pitch_);
    }
    return dst;
  }

 private:
  const Geometry& g_;
  const Tensor4<T>& x_;
  int64_t pitch_, slot_;
  std::vector<A> rows_;
  std::vector<int64_t> held_;  // the (n, row) each slot holds
};

int64_t channels_end(const Geometry& g, int64_t group) { return (group + 1) * g.channels_per_group; }

// Where the reassembly kernels come from. Both sources fill the phase rows [i][t][j][x] of the output rows
// of one input row (output row i, tap t, phase j) and take the gradient of those phase rows back.
//
// GivenMasks: the masks tensor M, as the op receives it.
template <typename T>
struct GivenMasks {
  Tensor4<T> m;
  T* grad_out;  // grad_masks
  Strides grad_strides;

  // taps [first_tap, end_tap) only (all by default): a caller that needs some of them loads no more
  template <typename A>
  void load(const Geometry& g, int64_t s, int64_t n, int64_t group, RowRange rows, A* dst, A*, int first_tap = 0,
            int end_tap = -1) const {
    const int taps = g.k * g.k;
    if (end_tap < 0) end_tap = taps;
    for (int64_t i = 0; i < rows.count(); ++i)
      for (int t = first_tap; t < end_tap; ++t)
        load_phases(m.row(n, mask_channel(group, t, g), rows.first + i), m.s.w, g.W, s, g.OW, 0,
                    dst + (i * taps + t) * s * g.W);
  }

  // grad: dL/dM in phase rows [i][t][j][x]; masks: what load gave, rows at the same places with another pitch
  template <typename A>
  void store_gradient(const Geometry& g, int64_t s, int64_t n, int64_t group, RowRange rows, const A* grad,
                      A*, const A*, int64_t) const {
    const int taps = g.k * g.k;
    for (int64_t i = 0; i < rows.count(); ++i)
      for (int t = 0; t < taps; ++t)
        store_phases(grad + (i * taps + t) * s * g.W, g.W, s, g.OW,
                     grad_out + element_offset(grad_strides, n, mask_channel(group, t, g), rows.first + i, 0),
                     grad_strides.w);
  }
  static constexpr int64_t scratch_size(const Geometry&, int64_t) { return 0; }
};

// EncoderLogits: the content encoder's raw output L (N, sigma^2 * k^2 * G, H, W); the mask of output pixel
// (sigma*h + i, sigma*x + j) is the softmax over the taps t of L[n, (g*k^2 + t)*sigma^2 + i*sigma + j, h, x]
// (pixel shuffle, then softmax), computed here and never written to memory. Its phase rows are plain rows of L.
template <typename T>
struct EncoderLogits {
  Tensor4<T> logits;
  T* grad_out;  // grad_logits
  Strides grad_strides;

  static int64_t channel(const Geometry& g, int64_t s, int64_t group, int t, int64_t i, int64_t j) {
    return mask_channel(group, t, g) * s * s + i * s + j;
  }

  // every tap, whatever is asked for: the softmax needs them all
  template <typename A>
  void load(const Geometry& g, int64_t s, int64_t n, int64_t group, RowRange rows, A* dst, A* scratch, int = 0,
            int = -1) const {
    const int taps = g.k * g.k;
    const int64_t h = rows.first / s;
    std::vector<A*> tap_rows(static_cast<size_t>(taps));
    for (int64_t i = 0; i < s; ++i)
      for (int64_t j = 0; j < s; ++j) {
        for (int t = 0; t < taps; ++t) {
          tap_rows[t] = dst + ((i * taps + t) * s + j) * g.W;
          load_padded_row(logits.row(n, channel(g, s, group, t, i, j), h), logits.s.w, g.W, 0, tap_rows[t]);
        }
        softmax_across_rows(tap_rows.data(), taps, g.W, scratch);
      }
  }

  // grad holds dL/dM in phase rows; dL/dlogit_t = p_t * (dM_t - sum_u p_u dM_u), with p the normalized masks
  // that load made (row (i, t, j) at masks + ((i * taps + t) * s + j) * pitch)
  template <typename A>
  void store_gradient(const Geometry& g, int64_t s, int64_t n, int64_t group, RowRange rows, const A* grad,
                      A* scratch, const A* masks, int64_t pitch) const {
    const int taps = g.k * g.k;
    const int64_t h = rows.first / s;
    A* dot = scratch;
    A* out = scratch + g.W;
    for (int64_t i = 0; i < s; ++i)
      for (int64_t j = 0; j < s; ++j) {
        std::fill(dot, dot + g.W, A(0));
        for (int t = 0; t < taps; ++t) {
          const A* p = masks + ((i * taps + t) * s + j) * pitch;
          const A* d = grad + ((i * taps + t) * s + j) * g.W;
          for (int64_t x = 0; x < g.W; ++x) dot[x] += p[x] * d[x];
        }
        for (int t = 0; t < taps; ++t) {
          const A* p = masks + ((i * taps + t) * s + j) * pitch;
          const A* d = grad + ((i * taps + t) * s + j) * g.W;
          for (int64_t x = 0; x < g.W; ++x) out[x] = p[x] * (d[x] - dot[x]);
          store_row(out, g.W, grad_out + element_offset(grad_strides, n, channel(g, s, group, t, i, j), h, 0),
                    grad_strides.w);
        }
      }
  }
  static int64_t scratch_size(const Geometry& g, int64_t) { return 2 * g.W; }
};

template <typename T, typename Source>
void forward_rows(const Geometry& g, int64_t s, const Tensor4<T>& x, const Source& source, T* out, Strides os,
                  int64_t begin, int64_t end) {
  using A = accumulate_t<T>;
  const int taps = g.k * g.k;
  const int64_t pitch = g.W + 2 * g.r;
  constexpr int block = kMaxOuter;  // channels computed together: they share the mask rows
  const int64_t max_rows = max_output_rows(g);
  auto mask_phases = buffer<A>(max_rows * taps * s * g.W);  // [i][t][j][x]: output row i of h
  auto phase_out = buffer<A>(block * max_rows * s * g.W);   // [q][i][j][x]
  auto scratch = buffer<A>(Source::scratch_size(g, s));
  PaddedRowRing<T, A> input(g, x);
  std::vector<const A*> a(static_cast<size_t>(kMaxOuter * taps)), b(static_cast<size_t>(taps)),
      tap_rows(size_t(g.k));
  A* outs[kMaxOuter * block];
  int64_t channel_offsets[block];
  for (int q = 0; q < block; ++q) channel_offsets[q] = q * pitch;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t n = task / g.H, h = task % g.H;
    const RowRange rows = output_rows(g, h);
    if (rows.count() == 0) continue;
    const int64_t phase_rows = rows.count() * s;  // (output row i, phase j): all read the same input rows
    for (int dyi = 0; dyi < g.k; ++dyi) tap_rows[size_t(dyi)] = input.row(n, h + dyi - g.r);
    for (int64_t group = 0; group < g.G; ++group) {
      source.load(g, s, n, group, rows, mask_phases.data(), scratch.data());
      for (int64_t c0 = group * g.channels_per_group; c0 < channels_end(g, group); c0 += block) {
        const int count = int(std::min<int64_t>(block, channels_end(g, group) - c0));
        for (int t = 0; t < taps; ++t) b[t] = tap_rows[size_t(t / g.k)] + c0 * pitch + t % g.k;
        // a block of (phase rows) x (channels) outputs: a = the phase rows' mask rows, b = the channels' inputs
        for (int64_t p0 = 0; p0 < phase_rows; p0 += kMaxOuter) {
          const int rows_a = int(std::min<int64_t>(kMaxOuter, phase_rows - p0));
          for (int p = 0; p < rows_a; ++p) {
            const int64_t i = (p0 + p) / s, j = (p0 + p) % s;
            for (int t = 0; t < taps; ++t) a[p * taps + t] = mask_phases.data() + ((i * taps + t) * s + j) * g.W;
            for (int q = 0; q < count; ++q) outs[p * count + q] = phase_out.data() + (q * max_rows * s + p0 + p) * g.W;
          }
          sum_of_products_outer(outs, rows_a, count, g.W, taps, a.data(), b.data(), channel_offsets, false);
        }
        for (int q = 0; q < count; ++q)
          for (int64_t i = 0; i < rows.count(); ++i)
            store_phases(phase_out.data() + (q * max_rows + i) * s * g.W, g.W, s, g.OW,
                         out + element_offset(os, n, c0 + q, rows.first + i, 0), os.w);
      }
    }
  }
  finish_streamed_stores();
}

// The backward, one input row h per task: dL/dX of row h, and dL/dM of the output rows of h (handed to the
// source, which stores it as grad_masks or turns it into grad_logits). Both read dY split into padded phase rows,
// each dY row of a thread's range once:
// - dL/dX[h] gathers over the taps and phases whose source pixel is (h - dy, w - dx): input row h reads, through
//   tap row dy, the outputs of source row h - dy. Every source row's masks and dY rows are read by k input rows,
//   so they are split once into a ring of k slots (slot sh % k holds source row sh) and read from there.
// - dL/dM of the outputs of h is the sum over the channels of a group of dY (shared by the taps) times X shifted
//   by the tap, the dY rows taken from the same ring.
template <typename T, typename Source>
void backward_rows(const Geometry& g, int64_t s, const Tensor4<T>& dy, const Tensor4<T>& x, const Source& source,
                   T* grad_x, Strides gxs, int64_t begin, int64_t end) {
  using A = accumulate_t<T>;
  const int taps = g.k * g.k;
  const int64_t pitch = g.W + 2 * g.r, max_rows = max_output_rows(g);
  constexpr int block = kMaxOuter;  // dL/dX: channels computed together (they share the mask rows)
  constexpr int64_t chunk = 32;      // dL/dM: channels summed per call
  const int64_t row_stride = s * pitch;                         // between output rows of a channel in the ring
  const int64_t channel_stride = max_rows * row_stride;         // between channels in the ring
  const int64_t mask_slot = g.G * max_rows * taps * s * pitch;  // [group][i][t][j][r + x]
  const int64_t grad_slot = g.C * channel_stride;               // [c][i][j][r + x]
  auto mask_ring = buffer<A>(g.k * mask_slot);
  auto grad_ring = buffer<A>(g.k * grad_slot);
  std::vector<int64_t> ring_row(static_cast<size_t>(g.k), -1);  // the (n, source row) of each slot
  PaddedRowRing<T, A> input(g, x);
  auto row_masks = buffer<A>(max_rows * taps * s * g.W);  // [i][t][j][x] of one source row
  auto sums = buffer<A>(std::max<int64_t>(block * g.W, max_rows * taps * s * g.W));
  auto scratch = buffer<A>(Source::scratch_size(g, s));
  const size_t max_terms = static_cast<size_t>(std::max<int64_t>(taps * max_rows * s, kMaxOuter * chunk));
  std::vector<const A*> a(max_terms), b(max_terms), tap_rows(size_t(g.k));
  A* outs[block];
  A* outs_masks[kMaxOuter * kMaxOuter];
  int64_t offsets[kMaxOuter];

  auto load_source_row = [&](int64_t n, int64_t sh) {
    const int64_t slot = sh % g.k;
    if (ring_row[size_t(slot)] == n * g.H + sh) return;
    ring_row[size_t(slot)] = n * g.H + sh;
    const RowRange rows = output_rows(g, sh);
    for (int64_t group = 0; group < g.G; ++group) {
      source.load(g, s, n, group, rows, row_masks.data(), scratch.data());
      for (int64_t i = 0; i < rows.count(); ++i)
        for (int t = 0; t < taps; ++t)
          for (int64_t j = 0; j < s; ++j) {
            A* dst = mask_ring.data() + slot * mask_slot + (((group * max_rows + i) * taps + t) * s + j) * pitch;
            const A* src = row_masks.data() + ((i * taps + t) * s + j) * g.W;
            std::fill(dst, dst + g.r, A(0));
            std::copy(src, src + g.W, dst + g.r);
            std::fill(dst + g.r + g.W, dst + pitch, A(0));
          }
    }
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t i = 0; i < rows.count(); ++i)
        load_phases(dy.row(n, c, rows.first + i), dy.s.w, g.W, s, g.OW, g.r,
                    grad_ring.data() + slot * grad_slot + c * channel_stride + i * row_stride);
  };

  for (int64_t task = begin; task < end; ++task) {
    const int64_t n = task / g.H, h = task % g.H;
    const int dyi_begin = int(std::max<int64_t>(0, h + g.r - (g.H - 1)));
    const int dyi_end = int(std::min<int64_t>(g.k, h + g.r + 1));
    for (int dyi = dyi_begin; dyi < dyi_end; ++dyi) load_source_row(n, h - dyi + g.r);
    for (int dyi = 0; dyi < g.k; ++dyi) tap_rows[size_t(dyi)] = input.row(n, h + dyi - g.r);
    const RowRange rows = output_rows(g, h);
    const A* grad_h = grad_ring.data() + (h % g.k) * grad_slot + g.r;  // dY rows of the outputs of h, unpadded
    for (int64_t group = 0; group < g.G; ++group) {
      // dL/dX[h]: for each (tap row, output row, tap column, phase) the mask row (shared by the channels) and the
      // dY row of the block's first channel, both shifted by -dx: dX[w] += M[.., s*(w - dx) + j] * dY[.., same]
      for (int q = 0; q < block; ++q) offsets[q] = q * channel_stride;
      for (int64_t c0 = group * g.channels_per_group; c0 < channels_end(g, group); c0 += block) {
        const int channels = int(std::min<int64_t>(block, channels_end(g, group) - c0));
        int terms = 0;
        for (int dyi = dyi_begin; dyi < dyi_end; ++dyi) {
          const int64_t sh = h - dyi + g.r, slot = sh % g.k;
          const RowRange source_rows = output_rows(g, sh);
          for (int64_t i = 0; i < source_rows.count(); ++i)
            for (int dxi = 0; dxi < g.k; ++dxi)
              for (int64_t j = 0; j < s; ++j) {
                const int64_t shift = g.r - (dxi - g.r);
                a[terms] = mask_ring.data() + slot * mask_slot +
                           (((group * max_rows + i) * taps + dyi * g.k + dxi) * s + j) * pitch + shift;
                b[terms] = grad_ring.data() + slot * grad_slot + c0 * channel_stride + i * row_stride + j * pitch +
                           shift;
                ++terms;
              }
        }
        for (int q = 0; q < channels; ++q) outs[q] = sums.data() + q * g.W;
        sum_of_products_outer(outs, 1, channels, g.W, terms, a.data(), b.data(), offsets, false);
        for (int q = 0; q < channels; ++q)
          for (int64_t w = 0; w < g.W; ++w)
            grad_x[element_offset(gxs, n, c0 + q, h, w)] = store<T>(sums[q * g.W + w]);
      }
      if (rows.count() == 0) continue;
      // dL/dM of the outputs of h: dM_t += sum over the chunk's channels of dY * X shifted by the tap, for a block
      // of (phase rows) x (taps): a = the phase rows' dY rows, b = X of channel q at tap (0, 0), shifted by the
      // tap's offset (the same for every channel)
      const int64_t c_begin = group * g.channels_per_group, phase_rows = rows.count() * s;
      const int groups = (taps + kMaxOuter - 1) / kMaxOuter;  // taps in groups as even as can be (25: 3,3,3,4,...)
      for (int64_t c0 = c_begin; c0 < channels_end(g, group); c0 += chunk) {
        const int count = int(std::min(chunk, channels_end(g, group) - c0));
        for (int q = 0; q < count; ++q) b[q] = tap_rows[0] + (c0 + q) * pitch;
        for (int64_t p0 = 0; p0 < phase_rows; p0 += kMaxOuter) {
          const int rows_a = int(std::min<int64_t>(kMaxOuter, phase_rows - p0));
          for (int p = 0; p < rows_a; ++p) {
            const int64_t i = (p0 + p) / s, j = (p0 + p) % s;
            for (int q = 0; q < count; ++q)
              a[p * count + q] = grad_h + (c0 + q) * channel_stride + i * row_stride + j * pitch;
          }
          for (int group_index = 0, t0 = 0; group_index < groups; ++group_index) {
            const int outputs = (taps - t0) / (groups - group_index);
            for (int u = 0; u < outputs; ++u) {
              const int t = t0 + u;
              offsets[u] = (tap_rows[size_t(t / g.k)] - tap_rows[0]) + t % g.k;
              for (int p = 0; p < rows_a; ++p) {
                const int64_t i = (p0 + p) / s, j = (p0 + p) % s;
                outs_masks[p * outputs + u] = sums.data() + ((i * taps + t) * s + j) * g.W;
              }
            }
            sum_of_products_outer(outs_masks, rows_a, outputs, g.W, count, a.data(), b.data(), offsets,
                                  c0 != c_begin);
            t0 += outputs;
          }
        }
      }
      // the kernels of the outputs of h, as load_source_row made them (EncoderLogits needs them for the softmax's
      // gradient)
      source.store_gradient(g, s, n, group, rows, sums.data(), scratch.data(),
                            mask_ring.data() + (h % g.k) * mask_slot + group * max_rows * taps * s * pitch + g.r,
                            pitch);
    }
  }
  finish_streamed_stores();
}

// The per-element path: element(a, b, c, d) for every element of an (A, B, C, D) grid, rows split over threads.
template <typename T, typename Element>
void fill_elements(int64_t A, int64_t B, int64_t C, int64_t D, int64_t cost_per_element, const Device& device,
                   TensorRef out, const Element& element) {
  T* const data = static_cast<T*>(out.data);
  parallel_for(A * B * C, device.num_threads, D * cost_per_element, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const Index4 i = unflatten(row * D, B, C, D);
      for (int64_t d = 0; d < D; ++d) data[element_offset(out.strides, i.a, i.b, i.c, d)] = store<T>(element(i.a, i.b, i.c, d));
    }
  });
}

int64_t row_cost(const Geometry& g) {
  return g.C * (g.OH * g.OW / std::max<int64_t>(1, g.H)) * int64_t(g.k) * g.k;
}

}  // namespace

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output) {
  const Geometry g = Geometry::of(problem);
  const int64_t s = column_phases(g.W, g.OW);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Tensor4<T> x{static_cast<const T*>(features.data), features.strides};
    const Tensor4<T> m{static_cast<const T*>(masks.data), masks.strides};
    if (s == 0) {
      const Operands<T> xo{x.data, x.s}, mo{m.data, m.s};
      return fill_elements<T>(g.N, g.C, g.OH, g.OW, int64_t(g.k) * g.k, device, output,
                              [&](int64_t n, int64_t c, int64_t oy, int64_t ox) {
                                return forward_element(g, xo, mo, n, c, oy, ox);
                              });
    }
    const GivenMasks<T> masks_source{m, nullptr, {}};
    parallel_for(g.N * g.H, device.num_threads, row_cost(g), [&](int64_t begin, int64_t end) {
      forward_rows(g, s, x, masks_source, static_cast<T*>(output.data), output.strides, begin, end);
    });
  });
}

void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks) {
  const Geometry g = Geometry::of(problem);
  const int64_t s = column_phases(g.W, g.OW);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Tensor4<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Tensor4<T> x{static_cast<const T*>(features.data), features.strides};
    const Tensor4<T> m{static_cast<const T*>(masks.data), masks.strides};
    if (s == 0) {
      const Operands<T> dyo{dy.data, dy.s}, xo{x.data, x.s}, mo{m.data, m.s};
      const int64_t reads_per_input = (g.OH * g.OW) / (g.H * g.W) + 1;
      fill_elements<T>(g.N, g.C, g.H, g.W, int64_t(g.k) * g.k * reads_per_input, device, grad_features,
                       [&](int64_t n, int64_t c, int64_t h, int64_t w) {
                         return grad_feature_element(g, dyo, mo, n, c, h, w);
                       });
      return fill_elements<T>(g.N, int64_t(g.G) * g.k * g.k, g.OH, g.OW, g.channels_per_group, device, grad_masks,
                              [&](int64_t n, int64_t mc, int64_t oy, int64_t ox) {
                                return grad_mask_element(g, dyo, xo, n, mc, oy, ox);
                              });
    }
    const GivenMasks<T> masks_source{m, static_cast<T*>(grad_masks.data), grad_masks.strides};
    parallel_for(g.N * g.H, device.num_threads, 2 * row_cost(g), [&](int64_t begin, int64_t end) {
      backward_rows(g, s, dy, x, masks_source, static_cast<T*>(grad_features.data), grad_features.strides, begin,
                    end);
    });
  });
}

void reassemble_normalized_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                                   ConstTensorRef logits, TensorRef output) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Tensor4<T> x{static_cast<const T*>(features.data), features.strides};
    const EncoderLogits<T> source{{static_cast<const T*>(logits.data), logits.strides}, nullptr, {}};
    parallel_for(g.N * g.H, device.num_threads, row_cost(g), [&](int64_t begin, int64_t end) {
      forward_rows(g, g.sigma, x, source, static_cast<T*>(output.data), output.strides, begin, end);
    });
  });
}

void reassemble_normalized_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                                    ConstTensorRef features, ConstTensorRef logits, TensorRef grad_features,
                                    TensorRef grad_logits) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Tensor4<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Tensor4<T> x{static_cast<const T*>(features.data), features.strides};
    const EncoderLogits<T> source{{static_cast<const T*>(logits.data), logits.strides},
                                  static_cast<T*>(grad_logits.data), grad_logits.strides};
    parallel_for(g.N * g.H, device.num_threads, 2 * row_cost(g), [&](int64_t begin, int64_t end) {
      backward_rows(g, g.sigma, dy, x, source, static_cast<T*>(grad_features.data), grad_features.strides, begin,
                    end);
    });
  });
}

}  // namespace cpu
}  // namespace carafe
