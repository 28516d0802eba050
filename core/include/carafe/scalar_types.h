// Storage types for float16 / bfloat16 and conversions to and from the accumulation type, usable on host and
// device. float16, bfloat16 and float32 accumulate in float32; float64 accumulates in float64.
// Conversions round to nearest even, as PyTorch does, so every number matches a torch cast on the same device
// bit for bit. NaN is the one exception to host/device agreement: the host conversions below give PyTorch's CPU
// NaNs (float16 0x7e00 with the sign kept, bfloat16 0x7fc0), the device intrinsics CUDA's canonical 0x7fff,
// as PyTorch's CUDA casts do (test_nan_bits_match_torch_casts_on_cuda). A NaN either way; only the bits differ.
#pragma once

#include <cstdint>
#include <cstring>

#include "carafe/index_math.h"  // CARAFE_HD

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace carafe {

struct alignas(2) Half {
  uint16_t bits;
};
struct alignas(2) BFloat16 {
  uint16_t bits;
};

template <typename T>
struct AccumulateType {
  using type = float;
};
template <>
struct AccumulateType<double> {
  using type = double;
};
template <typename T>
using accumulate_t = typename AccumulateType<T>::type;

CARAFE_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

CARAFE_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

CARAFE_HD float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));  // inf, nan
  if (exponent == 0) {
    // zero or subnormal: mantissa * 2^-24, exact in float32
    const float magnitude = float(mantissa) * 5.9604644775390625e-8f;
    return bits_float(sign | float_bits(magnitude));
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Round to nearest even by letting float32 addition do the rounding (the method of the FP16 library by
// Marat Dukhan, which PyTorch's c10::Half uses too).
CARAFE_HD uint16_t float_to_half_bits(float f) {
  const float scale_to_inf = 5.192296858534828e+33f;   // 2^112
  const float scale_to_zero = 7.703719777548943e-34f;  // 2^-110
  const uint32_t w = float_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  float base = ((f < 0 ? -f : f) * scale_to_inf) * scale_to_zero;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
  const uint32_t mantissa_bits = bits & 0x00000fffu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return uint16_t((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

CARAFE_HD float bfloat16_bits_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }

CARAFE_HD uint16_t float_to_bfloat16_bits(float f) {
  if (f != f) return 0x7fc0;  // canonical NaN, as PyTorch
  const uint32_t u = float_bits(f);
  const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return uint16_t((u + rounding_bias) >> 16);
}

// load: storage value -> accumulation type
CARAFE_HD float load(const float& v) { return v; }
CARAFE_HD double load(const double& v) { return v; }
CARAFE_HD float load(const Half& v) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(v.bits));
#else
  return half_bits_to_float(v.bits);
#endif
}
CARAFE_HD float load(const BFloat16& v) {
#if defined(__CUDA_ARCH__)
  return __bfloat162float(__ushort_as_bfloat16(v.bits));
#else
  return bfloat16_bits_to_float(v.bits);
#endif
}

// store: accumulation type -> storage value
template <typename T>
CARAFE_HD T store(accumulate_t<T> v);

template <>
CARAFE_HD float store<float>(float v) {
  return v;
}
template <>
CARAFE_HD double store<double>(double v) {
  return v;
}
template <>
CARAFE_HD Half store<Half>(float v) {
#if defined(__CUDA_ARCH__)
  return Half{__half_as_ushort(__float2half_rn(v))};
#else
  return Half{float_to_half_bits(v)};
#endif
}
template <>
CARAFE_HD BFloat16 store<BFloat16>(float v) {
#if defined(__CUDA_ARCH__)
  return BFloat16{__bfloat16_as_ushort(__float2bfloat16_rn(v))};
#else
  return BFloat16{float_to_bfloat16_bits(v)};
#endif
}

}  // namespace carafe
