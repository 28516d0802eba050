// carafe_ops._C: libcarafe's C++ API as seen from Python. Tensors arrive as (data pointer, element strides);
// the binding never sees a torch type, so one build serves every torch version.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <utility>

#include "carafe/carafe.h"

namespace py = pybind11;

namespace {

using PyTensor = std::pair<std::uintptr_t, std::array<int64_t, 4>>;  // (data_ptr, stride())

carafe::Strides strides_of(const PyTensor& t) { return {t.second[0], t.second[1], t.second[2], t.second[3]}; }
carafe::ConstTensorRef cref(const PyTensor& t) { return {reinterpret_cast<const void*>(t.first), strides_of(t)}; }
carafe::TensorRef ref(const PyTensor& t) { return {reinterpret_cast<void*>(t.first), strides_of(t)}; }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "libcarafe bindings (internal: use carafe_ops.carafe / CARAFEPack)";

  py::enum_<carafe::DType>(m, "DType")
      .value("float32", carafe::DType::Float32)
      .value("float64", carafe::DType::Float64)
      .value("float16", carafe::DType::Float16)
      .value("bfloat16", carafe::DType::BFloat16);

  py::class_<carafe::Problem>(m, "Problem")
      .def(py::init([](int64_t batch, int64_t channels, int64_t height, int64_t width, int kernel_size,
                       int group_size, int scale_factor, carafe::DType dtype, int64_t output_height,
                       int64_t output_width) {
             carafe::Problem p;
             p.batch = batch;
             p.channels = channels;
             p.height = height;
             p.width = width;
             p.kernel_size = kernel_size;
             p.group_size = group_size;
             p.scale_factor = scale_factor;
             p.dtype = dtype;
             p.output_height = output_height;
             p.output_width = output_width;
             return p;
           }),
           py::arg("batch"), py::arg("channels"), py::arg("height"), py::arg("width"), py::arg("kernel_size"),
           py::arg("group_size"), py::arg("scale_factor"), py::arg("dtype"), py::arg("output_height") = 0,
           py::arg("output_width") = 0);

  py::class_<carafe::Device>(m, "Device")
      .def(py::init([](bool cuda, int index, std::uintptr_t stream, int num_threads) {
             carafe::Device d;
             d.kind = cuda ? carafe::DeviceKind::CUDA : carafe::DeviceKind::CPU;
             d.index = index;
             d.stream = reinterpret_cast<carafe::CudaStream>(stream);
             d.num_threads = num_threads;
             return d;
           }),
           py::arg("cuda") = false, py::arg("index") = 0, py::arg("stream") = 0, py::arg("num_threads") = 0);

  m.def(
      "reassemble_forward",
      [](const carafe::Problem& p, const carafe::Device& d, const PyTensor& features, const PyTensor& masks,
         const PyTensor& output) { carafe::reassemble_forward(p, d, cref(features), cref(masks), ref(output)); },
      py::arg("problem"), py::arg("device"), py::arg("features"), py::arg("masks"), py::arg("output"),
      py::call_guard<py::gil_scoped_release>());

  m.def(
      "reassemble_backward",
      [](const carafe::Problem& p, const carafe::Device& d, const PyTensor& grad_output, const PyTensor& features,
         const PyTensor& masks, const PyTensor& grad_features, const PyTensor& grad_masks) {
        carafe::reassemble_backward(p, d, cref(grad_output), cref(features), cref(masks), ref(grad_features),
                                    ref(grad_masks));
      },
      py::arg("problem"), py::arg("device"), py::arg("grad_output"), py::arg("features"), py::arg("masks"),
      py::arg("grad_features"), py::arg("grad_masks"), py::call_guard<py::gil_scoped_release>());

  m.def(
      "reassemble_normalized_forward",
      [](const carafe::Problem& p, const carafe::Device& d, const PyTensor& features, const PyTensor& logits,
         const PyTensor& output) {
        carafe::reassemble_normalized_forward(p, d, cref(features), cref(logits), ref(output));
      },
      py::arg("problem"), py::arg("device"), py::arg("features"), py::arg("logits"), py::arg("output"),
      py::call_guard<py::gil_scoped_release>());

  m.def(
      "reassemble_normalized_backward",
      [](const carafe::Problem& p, const carafe::Device& d, const PyTensor& grad_output, const PyTensor& features,
         const PyTensor& logits, const PyTensor& grad_features, const PyTensor& grad_logits, uintptr_t workspace) {
        carafe::reassemble_normalized_backward(p, d, cref(grad_output), cref(features), cref(logits),
                                               ref(grad_features), ref(grad_logits),
                                               reinterpret_cast<void*>(workspace));
      },
      py::arg("problem"), py::arg("device"), py::arg("grad_output"), py::arg("features"), py::arg("logits"),
      py::arg("grad_features"), py::arg("grad_logits"), py::arg("workspace") = 0,
      py::call_guard<py::gil_scoped_release>());

  m.def("normalized_backward_workspace_bytes", &carafe::normalized_backward_workspace_bytes, py::arg("problem"),
        py::arg("device"), "bytes of device workspace reassemble_normalized_backward needs");

  m.def("cuda_driver_version", &carafe::cuda_driver_version,
        "CUDA version the NVIDIA driver supports (e.g. 13000); 0 without a driver or CUDA backend");

  m.def("build_info", [] {
    const carafe::BuildInfo info = carafe::build_info();
    py::dict out;
    out["version"] = info.version;
    out["cuda"] = info.cuda;
    out["cuda_runtime_version"] = info.cuda_runtime_version;
    out["cuda_architectures"] = info.cuda_architectures;
    out["cxx_compiler"] = info.cxx_compiler;
    return out;
  });
}
