// One element of each of the three CARAFE computations, written once for both backends: the CPU backend
// loops over elements on threads, the CUDA backend maps elements to GPU threads. Each element is a gather
// summed in a fixed order by one thread, so results are deterministic (no atomics anywhere).
//
// Taps outside the features read a zero, and are still multiplied: NaN or inf in a mask or in the output
// gradient propagates exactly as through the zero-padded reference (NaN * 0 = NaN).
#pragma once

#include "carafe/index_math.h"
#include "carafe/scalar_types.h"

namespace carafe {

template <typename T>
struct Operands {
  const T* data;
  Strides strides;

  CARAFE_HD accumulate_t<T> at(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return load(data[element_offset(strides, n, c, h, w)]);
  }
};

// Y[n, c, oy, ox]. Masks is Operands<T> or any accessor with the same at(n, mask channel, oy, ox).
template <typename T, typename Masks>
CARAFE_HD accumulate_t<T> forward_element(const Geometry& g, const Operands<T>& features, const Masks& masks,
                                          int64_t n, int64_t c, int64_t oy, int64_t ox) {
  using acc_t = accumulate_t<T>;
  const int64_t cy = source_coord(oy, g.H, g.OH);
  const int64_t cx = source_coord(ox, g.W, g.OW);
  const int64_t first_mask_channel = mask_channel(group_of_channel(c, g), 0, g);
  acc_t sum = 0;
  for (int dy = -g.r; dy <= g.r; ++dy) {
    const int64_t iy = cy + dy;
    for (int dx = -g.r; dx <= g.r; ++dx) {
      const int64_t ix = cx + dx;
      const acc_t x = (inside(iy, g.H) && inside(ix, g.W)) ? features.at(n, c, iy, ix) : acc_t(0);
      sum += masks.at(n, first_mask_channel + tap_index(dy, dx, g), oy, ox) * x;
    }
  }
  return sum;
}

// dL/dM[n, mc, oy, ox] = sum over the channels c of group g(mc) of dY[n, c, oy, ox] * X[n, c, tap position]
template <typename T>
CARAFE_HD accumulate_t<T> grad_mask_element(const Geometry& g, const Operands<T>& grad_output,
                                            const Operands<T>& features, int64_t n, int64_t mc, int64_t oy,
                                            int64_t ox) {
  using acc_t = accumulate_t<T>;
  const int64_t taps = int64_t(g.k) * g.k;
  const int64_t group = mc / taps;
  const int tap = int(mc % taps);
  const int64_t iy = source_coord(oy, g.H, g.OH) + tap / g.k - g.r;
  const int64_t ix = source_coord(ox, g.W, g.OW) + tap % g.k - g.r;
  const bool tap_inside = inside(iy, g.H) && inside(ix, g.W);
  const int64_t c_begin = group * g.channels_per_group;
  const int64_t c_end = c_begin + g.channels_per_group;
  acc_t sum = 0;
  for (int64_t c = c_begin; c < c_end; ++c) {
    const acc_t x = tap_inside ? features.at(n, c, iy, ix) : acc_t(0);
    sum += grad_output.at(n, c, oy, ox) * x;
  }
  return sum;
}

// dL/dX[n, c, h, w] = sum over the taps (dy, dx) and the outputs whose window centre is (h - dy, w - dx)
// of M[n, g(c)*k*k + tap, oy, ox] * dY[n, c, oy, ox]
template <typename T, typename Masks>
CARAFE_HD accumulate_t<T> grad_feature_element(const Geometry& g, const Operands<T>& grad_output,
                                               const Masks& masks, int64_t n, int64_t c, int64_t h, int64_t w) {
  using acc_t = accumulate_t<T>;
  const int64_t first_mask_channel = mask_channel(group_of_channel(c, g), 0, g);
  acc_t sum = 0;
  for (int dy = -g.r; dy <= g.r; ++dy) {
    const int64_t cy = h - dy;
    if (!inside(cy, g.H)) continue;
    const int64_t oy_end = first_output_of(cy + 1, g.H, g.OH);
    for (int dx = -g.r; dx <= g.r; ++dx) {
      const int64_t cx = w - dx;
      if (!inside(cx, g.W)) continue;
      const int64_t ox_end = first_output_of(cx + 1, g.W, g.OW);
      const int64_t mc = first_mask_channel + tap_index(dy, dx, g);
      for (int64_t oy = first_output_of(cy, g.H, g.OH); oy < oy_end; ++oy) {
        for (int64_t ox = first_output_of(cx, g.W, g.OW); ox < ox_end; ++ox) {
          sum += masks.at(n, mc, oy, ox) * grad_output.at(n, c, oy, ox);
        }
      }
    }
  }
  return sum;
}

}  // namespace carafe
