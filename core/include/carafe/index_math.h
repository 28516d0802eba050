// Index math of the CARAFE operator, shared by the CPU and CUDA backends (and the C++ tests).
// Every index is int64_t, so tensors of more than 2^31 elements address correctly.
#pragma once

#include <cstdint>

#include "carafe/carafe.h"

#if defined(__CUDACC__)
#define CARAFE_HD __host__ __device__ __forceinline__
#else
#define CARAFE_HD inline
#endif

namespace carafe {

// The sizes a kernel needs, derived once from a Problem.
struct Geometry {
  int64_t N, C, H, W;  // features
  int64_t OH, OW;      // output and masks: sigma*H, sigma*W
  int64_t channels_per_group;
  int k, r, G, sigma;

  static Geometry of(const Problem& p) {
    Geometry g;
    g.N = p.batch;
    g.C = p.channels;
    g.H = p.height;
    g.W = p.width;
    g.OH = p.out_height();
    g.OW = p.out_width();
    g.k = p.kernel_size;
    g.r = (p.kernel_size - 1) / 2;
    g.G = p.group_size;
    g.sigma = p.scale_factor;
    g.channels_per_group = p.channels / p.group_size;
    return g;
  }
};

CARAFE_HD int64_t element_offset(const Strides& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return n * s.n + c * s.c + h * s.h + w * s.w;
}

// The input coordinate an output coordinate's reassembly window is centred on: the one nearest-neighbour
// interpolation from in_size to out_size picks, floor(out * in_size / out_size), exactly (integer arithmetic).
// With out_size = sigma * in_size this is out / sigma.
CARAFE_HD int64_t source_coord(int64_t out_coord, int64_t in_size, int64_t out_size) {
  return out_coord * in_size / out_size;
}

// The first output coordinate whose source is in_coord, ceil(in_coord * out_size / in_size); the outputs of
// in_coord are [first_output_of(in_coord), first_output_of(in_coord + 1)).
CARAFE_HD int64_t first_output_of(int64_t in_coord, int64_t in_size, int64_t out_size) {
  return (in_coord * out_size + in_size - 1) / in_size;
}

CARAFE_HD bool inside(int64_t coord, int64_t size) { return coord >= 0 && coord < size; }

// Tap (dy, dx), each in [-r, r], as an index in [0, k*k).
CARAFE_HD int tap_index(int dy, int dx, const Geometry& g) { return (dy + g.r) * g.k + (dx + g.r); }

CARAFE_HD int64_t group_of_channel(int64_t c, const Geometry& g) { return c / g.channels_per_group; }

CARAFE_HD int64_t mask_channel(int64_t group, int tap, const Geometry& g) {
  return group * int64_t(g.k) * g.k + tap;
}

// Splits a flat index over an (a, b, c, d) grid, d fastest.
struct Index4 {
  int64_t a, b, c, d;
};

CARAFE_HD Index4 unflatten(int64_t i, int64_t b_size, int64_t c_size, int64_t d_size) {
  Index4 idx;
  idx.d = i % d_size;
  i /= d_size;
  idx.c = i % c_size;
  i /= c_size;
  idx.b = i % b_size;
  idx.a = i / b_size;
  return idx;
}

}  // namespace carafe
