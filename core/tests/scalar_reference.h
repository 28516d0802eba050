// The CARAFE operator written as plainly as possible, in float64 on dense NCHW arrays, straight from the
// definition with a zero-padded read. The backends are checked against it.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace carafe_test {

struct Dims {
  int64_t N, C, H, W;
  int k, G, sigma;
  int64_t out_h = 0, out_w = 0;  // 0: sigma * H, sigma * W
  int64_t OH() const { return out_h ? out_h : H * sigma; }
  int64_t OW() const { return out_w ? out_w : W * sigma; }
  // the input pixel an output pixel's window is centred on (nearest-neighbour interpolation's choice)
  int64_t src_y(int64_t oy) const { return oy * H / OH(); }
  int64_t src_x(int64_t ox) const { return ox * W / OW(); }
  int64_t MC() const { return int64_t(G) * k * k; }
};

// Dense NCHW index.
inline int64_t at(int64_t n, int64_t c, int64_t h, int64_t w, int64_t C, int64_t H, int64_t W) {
  return ((n * C + c) * H + h) * W + w;
}

inline double padded(const std::vector<double>& x, const Dims& d, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (h < 0 || h >= d.H || w < 0 || w >= d.W) return 0.0;
  return x[at(n, c, h, w, d.C, d.H, d.W)];
}

// Y = carafe(X, M); also returns sum |M * X| per output element in abs_terms (to scale tolerances).
inline std::vector<double> forward(const Dims& d, const std::vector<double>& x, const std::vector<double>& m,
                                   std::vector<double>* abs_terms = nullptr) {
  const int r = (d.k - 1) / 2;
  std::vector<double> y(size_t(d.N * d.C * d.OH() * d.OW()), 0.0);
  if (abs_terms) abs_terms->assign(y.size(), 0.0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t oy = 0; oy < d.OH(); ++oy)
        for (int64_t ox = 0; ox < d.OW(); ++ox) {
          const int64_t g = c / (d.C / d.G);
          double sum = 0, abs_sum = 0;
          for (int dy = -r; dy <= r; ++dy)
            for (int dx = -r; dx <= r; ++dx) {
              const int64_t mc = g * d.k * d.k + (dy + r) * d.k + (dx + r);
              const double term = m[at(n, mc, oy, ox, d.MC(), d.OH(), d.OW())] *
                                  padded(x, d, n, c, d.src_y(oy) + dy, d.src_x(ox) + dx);
              sum += term;
              abs_sum += term < 0 ? -term : term;
            }
          const int64_t i = at(n, c, oy, ox, d.C, d.OH(), d.OW());
          y[i] = sum;
          if (abs_terms) (*abs_terms)[i] = abs_sum;
        }
  return y;
}

// Backward by scattering each forward term's derivative, the opposite direction to the backends' gathers.
inline void backward(const Dims& d, const std::vector<double>& dy, const std::vector<double>& x,
                     const std::vector<double>& m, std::vector<double>& dx_out, std::vector<double>& dm_out,
                     std::vector<double>& dx_abs, std::vector<double>& dm_abs) {
  const int r = (d.k - 1) / 2;
  dx_out.assign(x.size(), 0.0);
  dm_out.assign(m.size(), 0.0);
  dx_abs.assign(x.size(), 0.0);
  dm_abs.assign(m.size(), 0.0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t oy = 0; oy < d.OH(); ++oy)
        for (int64_t ox = 0; ox < d.OW(); ++ox) {
          const int64_t g = c / (d.C / d.G);
          const double grad = dy[at(n, c, oy, ox, d.C, d.OH(), d.OW())];
          for (int ty = -r; ty <= r; ++ty)
            for (int tx = -r; tx <= r; ++tx) {
              const int64_t mc = g * d.k * d.k + (ty + r) * d.k + (tx + r);
              const int64_t mi = at(n, mc, oy, ox, d.MC(), d.OH(), d.OW());
              const int64_t iy = d.src_y(oy) + ty, ix = d.src_x(ox) + tx;
              const double xv = padded(x, d, n, c, iy, ix);
              dm_out[mi] += grad * xv;
              dm_abs[mi] += grad * xv < 0 ? -(grad * xv) : grad * xv;
              if (iy >= 0 && iy < d.H && ix >= 0 && ix < d.W) {
                const int64_t xi = at(n, c, iy, ix, d.C, d.H, d.W);
                dx_out[xi] += grad * m[mi];
                dx_abs[xi] += grad * m[mi] < 0 ? -(grad * m[mi]) : grad * m[mi];
              }
            }
        }
}

// The fused kernel normalizer's masks: pixel shuffle of logits (N, sigma^2*k*k*G, H, W) by sigma, then softmax
// over each group's k*k taps. Returns dense masks (N, G*k*k, sigma*H, sigma*W).
inline std::vector<double> normalize_logits(const Dims& d, const std::vector<double>& logits) {
  const int64_t taps = int64_t(d.k) * d.k, s = d.sigma;
  std::vector<double> masks(size_t(d.N * d.MC() * d.OH() * d.OW()));
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g)
      for (int64_t oy = 0; oy < d.OH(); ++oy)
        for (int64_t ox = 0; ox < d.OW(); ++ox) {
          std::vector<double> e(static_cast<size_t>(taps));
          double largest = -1e300, total = 0;
          for (int64_t t = 0; t < taps; ++t) {
            const int64_t channel = (g * taps + t) * s * s + (oy % s) * s + (ox % s);
            e[t] = logits[at(n, channel, oy / s, ox / s, d.MC() * s * s, d.H, d.W)];
            largest = e[t] > largest ? e[t] : largest;
          }
          for (auto& v : e) total += v = std::exp(v - largest);
          for (int64_t t = 0; t < taps; ++t) masks[at(n, g * taps + t, oy, ox, d.MC(), d.OH(), d.OW())] = e[t] / total;
        }
  return masks;
}

// d(loss)/d(logits) from d(loss)/d(masks): softmax backward, then the inverse pixel shuffle.
inline std::vector<double> normalize_backward(const Dims& d, const std::vector<double>& masks,
                                              const std::vector<double>& grad_masks) {
  const int64_t taps = int64_t(d.k) * d.k, s = d.sigma;
  std::vector<double> grad_logits(size_t(d.N * d.MC() * s * s * d.H * d.W));
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g)
      for (int64_t oy = 0; oy < d.OH(); ++oy)
        for (int64_t ox = 0; ox < d.OW(); ++ox) {
          double dot = 0;
          for (int64_t t = 0; t < taps; ++t) {
            const int64_t i = at(n, g * taps + t, oy, ox, d.MC(), d.OH(), d.OW());
            dot += masks[i] * grad_masks[i];
          }
          for (int64_t t = 0; t < taps; ++t) {
            const int64_t i = at(n, g * taps + t, oy, ox, d.MC(), d.OH(), d.OW());
            const int64_t channel = (g * taps + t) * s * s + (oy % s) * s + (ox % s);
            grad_logits[at(n, channel, oy / s, ox / s, d.MC() * s * s, d.H, d.W)] = masks[i] * (grad_masks[i] - dot);
          }
        }
  return grad_logits;
}

}  // namespace carafe_test
