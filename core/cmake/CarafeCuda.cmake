# Decides whether the CUDA backend is built (CARAFE_WITH_CUDA) and for which architectures (CARAFE_CUDA_ARCH_LIST).
include(CheckLanguage)

# A CUDA toolkit in a non-standard place, e.g. one installed with pip (site-packages/nvidia/cu13, from the
# nvidia-cuda-nvcc, -runtime, -crt and -cccl packages). Also read from the environment variable of the same name.
set(CARAFE_CUDA_TOOLKIT_ROOT "$ENV{CARAFE_CUDA_TOOLKIT_ROOT}" CACHE PATH
    "Root of the CUDA toolkit to build with (holding bin/nvcc); empty: nvcc from PATH or CUDACXX")
if(CARAFE_CUDA_TOOLKIT_ROOT AND NOT CARAFE_CUDA STREQUAL "OFF")
  if(NOT EXISTS "${CARAFE_CUDA_TOOLKIT_ROOT}/bin/nvcc")
    message(FATAL_ERROR "CARAFE_CUDA_TOOLKIT_ROOT=${CARAFE_CUDA_TOOLKIT_ROOT} has no bin/nvcc")
  endif()
  set(CMAKE_CUDA_COMPILER "${CARAFE_CUDA_TOOLKIT_ROOT}/bin/nvcc")
  set(ENV{CUDACXX} "${CMAKE_CUDA_COMPILER}")
  set(CUDAToolkit_ROOT "${CARAFE_CUDA_TOOLKIT_ROOT}")
  # pip's toolkits ship only the versioned libcudart.so.N, which FindCUDAToolkit does not look for; libcarafe
  # links the static runtime anyway, so point the shared one at what is there
  file(GLOB _cudart_shared "${CARAFE_CUDA_TOOLKIT_ROOT}/lib/libcudart.so.*")
  if(NOT EXISTS "${CARAFE_CUDA_TOOLKIT_ROOT}/lib/libcudart.so" AND _cudart_shared)
    list(GET _cudart_shared 0 _cudart_shared)
    set(CUDA_CUDART "${_cudart_shared}" CACHE FILEPATH "CUDA runtime (shared)")
  endif()
endif()

set(CARAFE_WITH_CUDA OFF)
if(NOT CARAFE_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CARAFE_WITH_CUDA ON)
  elseif(CARAFE_CUDA STREQUAL "ON")
    message(FATAL_ERROR
      "CARAFE_CUDA=ON but no CUDA compiler was found. Put nvcc on PATH, or point CUDACXX / "
      "-DCMAKE_CUDA_COMPILER=/path/to/nvcc at one, or configure with -DCARAFE_CUDA=OFF for a CPU-only build.")
  else()
    message(STATUS "libcarafe: no CUDA compiler found; building the CPU backend only")
  endif()
endif()

if(CARAFE_WITH_CUDA)
  # The architectures must be known before enable_language(CUDA) compiles its test program.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES OFF)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)

  if(CARAFE_CUDA_ARCHITECTURES STREQUAL "auto")
    # Real code for each major architecture the toolkit supports (Turing 7.5 stands in for its generation),
    # PTX for the newest so that later GPUs still run (JIT-compiled by the driver).
    set(_v ${CMAKE_CUDA_COMPILER_VERSION})
    if(_v VERSION_GREATER_EQUAL 13.0)
      set(CARAFE_CUDA_ARCH_LIST 75-real 80-real 90-real 100-real 110-real 120-real 120-virtual)
    elseif(_v VERSION_GREATER_EQUAL 12.8)
      set(CARAFE_CUDA_ARCH_LIST 70-real 75-real 80-real 90-real 100-real 120-real 120-virtual)
    elseif(_v VERSION_GREATER_EQUAL 11.8)
      set(CARAFE_CUDA_ARCH_LIST 70-real 75-real 80-real 90-real 90-virtual)
    else()
      message(FATAL_ERROR "libcarafe needs CUDA 11.8 or newer, found ${_v}")
    endif()
  else()
    set(CARAFE_CUDA_ARCH_LIST ${CARAFE_CUDA_ARCHITECTURES})
  endif()
  # nvcc compiles the architectures of a file one after another unless told to use several threads; with
  # seven architectures of register-tiled kernels that is most of the build.
  set(CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} --threads 0")
  string(REPLACE ";" "," CARAFE_CUDA_ARCH_TEXT "${CARAFE_CUDA_ARCH_LIST}")
  message(STATUS "libcarafe: CUDA ${CMAKE_CUDA_COMPILER_VERSION} backend for architectures ${CARAFE_CUDA_ARCH_TEXT}")
endif()
