// Calls fn with a value of the storage type that a DType names.
#pragma once

#include <stdexcept>
#include <string>

#include "carafe/carafe.h"
#include "carafe/scalar_types.h"

namespace carafe {

template <typename Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Float16: return fn(Half{});
    case DType::BFloat16: return fn(BFloat16{});
  }
  throw std::invalid_argument("carafe: dtype code " + std::to_string(int(dtype)) +
                              " is not one of float32, float64, float16, bfloat16");
}

}  // namespace carafe
