// The pybind11 module: turn arguments into checked views, build the params struct, release the
// GIL, call the op. Nothing else lives here: the per-thread device and stream state is in
// core/context, the machine probes in core/probe, the CUDA emulator's hooks in cuda/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>

#include "core/cache.h"
#include "core/check.h"
#include "core/context.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "core/probe.h"
#include "core/view.h"
#include "cuda/kernels.h"
#include "ops.h"

#ifndef CONVFORGE_WITH_CUDA_EMULATION
#define CONVFORGE_WITH_CUDA_EMULATION 0  // set by the build once the emulated CUDA kernels exist
#endif

namespace py = pybind11;
using namespace convforge;

using Pair = std::array<int64_t, 2>;
using Quad = std::array<int64_t, 4>;  // top, bottom, left, right

// A device array described by __cuda_array_interface__ (CuPy arrays, torch CUDA tensors).
static View cuda_view(const py::handle& obj, const char* name) {
  CHECK(CONVFORGE_WITH_CUDA, name, ": expected a NumPy array (this build of convforge has no CUDA "
        "kernels), got a CUDA array");
  View v;
  v.name = name;
  v.device = Device::cuda;
  auto cai = obj.attr("__cuda_array_interface__").cast<py::dict>();
  const auto typestr = cai["typestr"].cast<std::string>();
  if (typestr == "<f4")
    v.dtype = DType::f32;
  else if (typestr == "<f8")
    v.dtype = DType::f64;
  else if (typestr == "<i8")
    v.dtype = DType::i64;
  else
    CHECK_TYPE(false, name, ": expected dtype float32 or float64, got typestr '", typestr, "'");
  auto data = cai["data"].cast<py::tuple>();
  v.data = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  v.readonly = data[1].cast<bool>();
  for (auto d : cai["shape"].cast<py::tuple>()) v.shape.push_back(d.cast<int64_t>());
  const int64_t itemsize = dtype_size(v.dtype);
  if (!cai.contains("strides") || cai["strides"].is_none()) {
    v.strides.assign(v.shape.size(), 1);
    for (int64_t i = int64_t(v.shape.size()) - 2; i >= 0; --i) v.strides[i] = v.strides[i + 1] * v.shape[i + 1];
  } else {
    for (auto st : cai["strides"].cast<py::tuple>()) {
      CHECK(st.cast<int64_t>() % itemsize == 0, name, ": expected strides that are a multiple of the item size");
      v.strides.push_back(st.cast<int64_t>() / itemsize);
    }
  }
  return v;
}

static View to_view(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj) && py::hasattr(obj, "__cuda_array_interface__"))
    return cuda_view(obj, name);
  View v;
  v.name = name;
  v.device = host_array_device();
  CHECK_TYPE(py::isinstance<py::array>(obj), name, ": expected a NumPy array, got ",
             std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  const char kind = arr.dtype().kind();
  const auto itemsize = arr.itemsize();
  if (kind == 'f' && itemsize == 4)
    v.dtype = DType::f32;
  else if (kind == 'f' && itemsize == 8)
    v.dtype = DType::f64;
  else if (kind == 'i' && itemsize == 8)
    v.dtype = DType::i64;
  else
    CHECK_TYPE(false, name, ": expected dtype float32 or float64, got ",
               std::string(py::str(arr.dtype())));
  v.data = const_cast<void*>(arr.data());  // writes only after require_writable()
  v.readonly = !arr.writeable();
  const py::ssize_t ndim = arr.ndim();
  v.shape.resize(ndim);
  v.strides.resize(ndim);
  for (py::ssize_t i = 0; i < ndim; ++i) {
    v.shape[i] = arr.shape(i);
    CHECK(arr.strides(i) % itemsize == 0, name, ": expected strides that are a multiple of the item size");
    v.strides[i] = arr.strides(i) / itemsize;
  }
  return v;
}

static std::optional<View> to_optional_view(const py::handle& obj, const char* name) {
  if (obj.is_none()) return std::nullopt;
  return to_view(obj, name);
}

// Float arrays only (index arrays are checked by the op that takes them).
static void require_float(const View& v) {
  CHECK_TYPE(v.dtype != DType::i64, v.name, ": expected dtype float32 or float64, got int64");
}

// An output: same dtype and device as the reference input, the shape given, dense in the op's
// layout (C-contiguous, or NHWC with channels_last), writable, and not overlapping any input.
static void require_output(const View& out, const View& like, const std::vector<int64_t>& shape,
                           std::initializer_list<const View*> inputs, bool channels_last = false) {
  out.require_dtype(like.dtype);
  out.require_same_device(like);
  out.require_shape(shape);
  out.require_dense(channels_last);
  out.require_writable();
  for (const View* in : inputs)
    if (in) out.require_disjoint(*in);
}

// ---------------------------------------------------------------------------------------------
// GEMM

// A 2-D operand the kernel can stride over: unit stride along rows (row-major) or along columns
// (column-major, handled as the transpose). Returns {leading dimension, transposed}.
static std::pair<int64_t, bool> gemm_layout(const View& v) {
  const int64_t rows = v.shape[0], cols = v.shape[1];
  if (rows == 0 || cols == 0) return {std::max<int64_t>(cols, 1), false};  // nothing is read
  // The leading dimension must step over a whole row (column): negative, zero or overlapping
  // strides would make the kernel read outside the array.
  if ((v.strides[1] == 1 || cols == 1) && (rows == 1 || v.strides[0] >= cols))
    return {std::max<int64_t>({v.strides[0], cols, 1}), false};
  if ((v.strides[0] == 1 || rows == 1) && (cols == 1 || v.strides[1] >= rows))
    return {std::max<int64_t>({v.strides[1], rows, 1}), true};
  CHECK(false, v.name, ": expected unit stride along one axis and a leading stride at least the "
        "other axis's size, got strides (", v.strides[0], ", ", v.strides[1], ") in elements");
  return {0, false};
}

static void py_gemm(const py::handle& a_obj, const py::handle& b_obj, const py::handle& c_obj,
                    const py::handle& out_obj, double alpha, double beta, bool trans_a, bool trans_b) {
  View a = to_view(a_obj, "a"), b = to_view(b_obj, "b"), out = to_view(out_obj, "out");
  auto c = to_optional_view(c_obj, "c");
  require_float(a);
  a.require_ndim(2);
  b.require_ndim(2);
  b.require_dtype(a.dtype);
  b.require_same_device(a);
  const int64_t m = trans_a ? a.shape[1] : a.shape[0], k = trans_a ? a.shape[0] : a.shape[1];
  const int64_t kb = trans_b ? b.shape[1] : b.shape[0], n = trans_b ? b.shape[0] : b.shape[1];
  CHECK(k == kb, "b: expected ", k, " rows in op(b) to match the columns of op(a), got ", kb,
        " (a ", a.shape_str(), ", b ", b.shape_str(), ")");
  out.require_ndim(2);
  out.require_dtype(a.dtype);
  out.require_same_device(a);
  out.require_shape({m, n});
  out.require_writable();
  out.require_disjoint(a);
  out.require_disjoint(b);
  CHECK(m == 0 || n == 0 || ((out.strides[1] == 1 || n == 1) && (m == 1 || out.strides[0] >= n)),
        "out: expected unit stride along columns and a row stride of at least ", n,
        ", got strides (", out.strides[0], ", ", out.strides[1], ") in elements");
  if (c) {
    c->require_ndim(2);
    c->require_dtype(a.dtype);
    c->require_same_device(a);
    c->require_shape({m, n});
  }
  const bool copy_c = c && beta != 0.0 && c->data != out.data;
  if (copy_c) out.require_disjoint(*c);
  if (!c) beta = 0.0;
  GemmParams p;
  p.dtype = a.dtype;
  p.device = a.device;
  p.stream = launch_stream(p.device);
  p.m = m, p.n = n, p.k = k;
  auto [lda, a_col_major] = gemm_layout(a);
  auto [ldb, b_col_major] = gemm_layout(b);
  p.a = a.data, p.lda = lda, p.trans_a = trans_a != a_col_major;
  p.b = b.data, p.ldb = ldb, p.trans_b = trans_b != b_col_major;
  p.c = out.data, p.ldc = std::max<int64_t>({out.strides[0], n, 1});
  p.alpha = alpha, p.beta = beta;
  if (copy_c) p.c_init = c->data, p.c_init_rs = c->strides[0], p.c_init_cs = c->strides[1];
  py::gil_scoped_release release;
  gemm(p);
}

// Kernel sizes, strides, paddings and dilations are at most 2^31 - 1, so that the size and index
// arithmetic (in + 2 * pad - dilation * (kernel - 1), ...) cannot overflow int64.
constexpr int64_t kMaxWindowParam = (int64_t{1} << 31) - 1;
template <size_t N>
static void require_window_param(const char* name, const std::array<int64_t, N>& values) {
  for (int64_t v : values)
    CHECK(v <= kMaxWindowParam, name, ": expected values at most ", kMaxWindowParam, ", got ", v);
}

// ---------------------------------------------------------------------------------------------
// conv2d

// The problem, and the layouts of its arrays: the activations (input, output, their gradients:
// `activations`) are channels_last when one of them is, the weight (and grad_weight: `weights`)
// independently.
static Conv2dParams conv_params(const View& input, const View& weight, Pair stride, Quad padding,
                                Pair dilation, int64_t groups,
                                std::initializer_list<const View*> activations,
                                std::initializer_list<const View*> weights) {
  require_float(input);
  input.require_ndim(4);
  weight.require_ndim(4);
  weight.require_dtype(input.dtype);
  weight.require_same_device(input);
  CHECK(input.shape[2] > 0 && input.shape[3] > 0, input.name,
        ": expected non-empty height and width (only the batch or channels may be empty, as in "
        "torch), got shape ", input.shape_str());
  CHECK(weight.shape[0] > 0, "weight: expected at least one output channel (as torch), got shape ",
        weight.shape_str());
  const int64_t kernel[2] = {weight.shape[2], weight.shape[3]};
  conv2d_check_window(kernel, stride.data(), padding.data(), dilation.data());
  Conv2dParams p;
  p.dtype = input.dtype;
  p.device = input.device;
  p.stream = launch_stream(p.device);
  p.n = input.shape[0], p.c_in = input.shape[1], p.h = input.shape[2], p.w = input.shape[3];
  p.c_out = weight.shape[0], p.kh = weight.shape[2], p.kw = weight.shape[3], p.groups = groups;
  p.stride_h = stride[0], p.stride_w = stride[1];
  p.pad_h = padding[0], p.pad_w = padding[2];
  p.dilation_h = dilation[0], p.dilation_w = dilation[1];
  p.out_h = conv_out_size(p.h, p.kh, p.stride_h, padding[0], padding[1], p.dilation_h);
  p.out_w = conv_out_size(p.w, p.kw, p.stride_w, padding[2], padding[3], p.dilation_w);
  p.channels_last = channels_last_layout(activations);
  p.weight_channels_last = channels_last_layout(weights);
  input.require_dense(p.channels_last);
  weight.require_dense(p.weight_channels_last);
  conv2d_check(p);
  CHECK(weight.shape[1] * groups == p.c_in, "weight: expected ", p.c_in / groups,
        " input channels per group (input has ", p.c_in, " channels, groups=", groups, "), got ",
        weight.shape[1], " (weight ", weight.shape_str(), ")");
  return p;
}

static void py_conv2d_forward(const py::handle& input_obj, const py::handle& weight_obj,
                              const py::handle& bias_obj, const py::handle& output_obj, Pair stride,
                              Quad padding, Pair dilation, int64_t groups, const std::string& algorithm) {
  View input = to_view(input_obj, "input"), weight = to_view(weight_obj, "weight");
  auto bias = to_optional_view(bias_obj, "bias");
  View output = to_view(output_obj, "output");
  Conv2dParams p =
      conv_params(input, weight, stride, padding, dilation, groups, {&input, &output}, {&weight});
  p.algorithm = algorithm.c_str();
  if (bias) {
    bias->require_dtype(p.dtype);
    bias->require_same_device(input);
    bias->require_shape({p.c_out});
    bias->require_contiguous();
  }
  require_output(output, input, {p.n, p.c_out, p.out_h, p.out_w},
                 {&input, &weight, bias ? &*bias : nullptr}, p.channels_last);
  py::gil_scoped_release release;
  conv2d_forward(p, input.data, weight.data, bias ? bias->data : nullptr, output.data);
}

static void py_conv2d_backward(const py::handle& grad_output_obj, const py::handle& input_obj,
                               const py::handle& weight_obj, const py::handle& grad_input_obj,
                               const py::handle& grad_weight_obj, const py::handle& grad_bias_obj,
                               Pair stride, Quad padding, Pair dilation, int64_t groups,
                               const std::string& algorithm) {
  View input = to_view(input_obj, "input"), weight = to_view(weight_obj, "weight");
  View grad_output = to_view(grad_output_obj, "grad_output");
  auto grad_input = to_optional_view(grad_input_obj, "grad_input");
  auto grad_weight = to_optional_view(grad_weight_obj, "grad_weight");
  auto grad_bias = to_optional_view(grad_bias_obj, "grad_bias");
  Conv2dParams p = conv_params(input, weight, stride, padding, dilation, groups,
                               {&input, &grad_output, grad_input ? &*grad_input : nullptr},
                               {&weight, grad_weight ? &*grad_weight : nullptr});
  p.algorithm = algorithm.c_str();
  grad_output.require_dtype(p.dtype);
  grad_output.require_same_device(input);
  grad_output.require_shape({p.n, p.c_out, p.out_h, p.out_w});
  grad_output.require_dense(p.channels_last);
  const std::initializer_list<const View*> inputs = {&input, &weight, &grad_output};
  if (grad_input) require_output(*grad_input, input, input.shape, inputs, p.channels_last);
  if (grad_weight) require_output(*grad_weight, input, weight.shape, inputs, p.weight_channels_last);
  if (grad_bias) require_output(*grad_bias, input, {p.c_out}, inputs);
  py::gil_scoped_release release;
  conv2d_backward(p, grad_output.data, input.data, weight.data,
                  grad_input ? grad_input->data : nullptr, grad_weight ? grad_weight->data : nullptr,
                  grad_bias ? grad_bias->data : nullptr);
}

// ---------------------------------------------------------------------------------------------
// Pooling

// The problem, and the layout of all its arrays (input, output, indices, the gradients):
// channels_last when one of `arrays` is; each must then be dense in that layout.
static Pool2dParams pool_params(const View& input, Pair kernel, Pair stride, Pair padding,
                                Pair dilation, bool ceil_mode,
                                std::initializer_list<const View*> arrays) {
  require_float(input);
  input.require_ndim(4);
  CHECK(kernel[0] > 0 && kernel[1] > 0, "kernel_size: expected positive values, got (", kernel[0],
        ", ", kernel[1], ")");
  CHECK(stride[0] > 0 && stride[1] > 0, "stride: expected positive values, got (", stride[0], ", ",
        stride[1], ")");
  CHECK(dilation[0] > 0 && dilation[1] > 0, "dilation: expected positive values, got (",
        dilation[0], ", ", dilation[1], ")");
  CHECK(input.shape[1] > 0 && input.shape[2] > 0 && input.shape[3] > 0, input.name,
        ": expected non-empty channel, height and width dimensions (only the batch may be empty, "
        "as in torch), got shape ", input.shape_str());
  require_window_param("kernel_size", kernel);
  require_window_param("stride", stride);
  require_window_param("dilation", dilation);
  CHECK(padding[0] >= 0 && padding[1] >= 0 && 2 * padding[0] <= kernel[0] &&
            2 * padding[1] <= kernel[1],
        "padding: expected non-negative values at most half the kernel size (", kernel[0] / 2,
        ", ", kernel[1] / 2, "), got (", padding[0], ", ", padding[1], ")");
  Pool2dParams p;
  p.dtype = input.dtype;
  p.device = input.device;
  p.stream = launch_stream(p.device);
  p.n = input.shape[0], p.c = input.shape[1], p.h = input.shape[2], p.w = input.shape[3];
  p.kh = kernel[0], p.kw = kernel[1];
  p.stride_h = stride[0], p.stride_w = stride[1];
  p.pad_h = padding[0], p.pad_w = padding[1];
  p.dilation_h = dilation[0], p.dilation_w = dilation[1];
  p.channels_last = channels_last_layout(arrays);
  input.require_dense(p.channels_last);
  p.out_h = pool_out_size(p.h, p.kh, p.stride_h, p.pad_h, p.dilation_h, ceil_mode);
  p.out_w = pool_out_size(p.w, p.kw, p.stride_w, p.pad_w, p.dilation_w, ceil_mode);
  CHECK(p.out_h > 0 && p.out_w > 0, "kernel_size: expected a window that fits the padded input (",
        p.h + 2 * p.pad_h, " x ", p.w + 2 * p.pad_w, "), got an effective window of ",
        p.dilation_h * (p.kh - 1) + 1, " x ", p.dilation_w * (p.kw - 1) + 1);
  return p;
}

static void require_indices(const View& indices, const Pool2dParams& p) {
  indices.require_dtype(DType::i64);
  indices.require_shape({p.n, p.c, p.out_h, p.out_w});
  indices.require_dense(p.channels_last);
}

static void py_max_pool2d_forward(const py::handle& input_obj, const py::handle& output_obj,
                                  const py::handle& indices_obj, Pair kernel, Pair stride,
                                  Pair padding, Pair dilation, bool ceil_mode) {
  View input = to_view(input_obj, "input"), output = to_view(output_obj, "output");
  auto indices = to_optional_view(indices_obj, "indices");
  Pool2dParams p = pool_params(input, kernel, stride, padding, dilation, ceil_mode,
                               {&input, &output, indices ? &*indices : nullptr});
  require_output(output, input, {p.n, p.c, p.out_h, p.out_w}, {&input}, p.channels_last);
  if (indices) {
    indices->require_same_device(input);
    require_indices(*indices, p);
    indices->require_writable();
    indices->require_disjoint(input);
    indices->require_disjoint(output);
  }
  py::gil_scoped_release release;
  max_pool2d_forward(p, input.data, output.data,
                     indices ? static_cast<int64_t*>(indices->data) : nullptr);
}

static void py_max_pool2d_backward(const py::handle& grad_output_obj, const py::handle& indices_obj,
                                   const py::handle& grad_input_obj, Pair kernel, Pair stride,
                                   Pair padding, Pair dilation, bool ceil_mode) {
  View grad_output = to_view(grad_output_obj, "grad_output");
  View indices = to_view(indices_obj, "indices"), grad_input = to_view(grad_input_obj, "grad_input");
  require_float(grad_input);
  grad_input.require_ndim(4);
  Pool2dParams p = pool_params(grad_input, kernel, stride, padding, dilation, ceil_mode,
                               {&grad_input, &grad_output, &indices});
  grad_output.require_dtype(p.dtype);
  grad_output.require_same_device(grad_input);
  grad_output.require_shape({p.n, p.c, p.out_h, p.out_w});
  grad_output.require_dense(p.channels_last);
  indices.require_same_device(grad_input);
  require_indices(indices, p);
  require_output(grad_input, grad_input, grad_input.shape, {&grad_output, &indices}, p.channels_last);
  py::gil_scoped_release release;
  max_pool2d_backward(p, grad_output.data, static_cast<const int64_t*>(indices.data), grad_input.data);
}

static Pool2dParams avg_params(const View& input, Pair kernel, Pair stride, Pair padding,
                               bool ceil_mode, bool count_include_pad,
                               std::optional<int64_t> divisor_override,
                               std::initializer_list<const View*> arrays) {
  Pool2dParams p = pool_params(input, kernel, stride, padding, {1, 1}, ceil_mode, arrays);
  CHECK(!divisor_override || *divisor_override > 0,
        "divisor_override: expected a positive integer, got ", divisor_override.value_or(0));
  p.count_include_pad = count_include_pad;
  p.divisor_override = divisor_override.value_or(0);
  return p;
}

static void py_avg_pool2d_forward(const py::handle& input_obj, const py::handle& output_obj,
                                  Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                                  bool count_include_pad, std::optional<int64_t> divisor_override) {
  View input = to_view(input_obj, "input"), output = to_view(output_obj, "output");
  Pool2dParams p = avg_params(input, kernel, stride, padding, ceil_mode, count_include_pad,
                              divisor_override, {&input, &output});
  require_output(output, input, {p.n, p.c, p.out_h, p.out_w}, {&input}, p.channels_last);
  py::gil_scoped_release release;
  avg_pool2d_forward(p, input.data, output.data);
}

static void py_avg_pool2d_backward(const py::handle& grad_output_obj, const py::handle& grad_input_obj,
                                   Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                                   bool count_include_pad, std::optional<int64_t> divisor_override) {
  View grad_output = to_view(grad_output_obj, "grad_output");
  View grad_input = to_view(grad_input_obj, "grad_input");
  require_float(grad_input);
  grad_input.require_ndim(4);
  Pool2dParams p = avg_params(grad_input, kernel, stride, padding, ceil_mode, count_include_pad,
                              divisor_override, {&grad_input, &grad_output});
  grad_output.require_dtype(p.dtype);
  grad_output.require_same_device(grad_input);
  grad_output.require_shape({p.n, p.c, p.out_h, p.out_w});
  grad_output.require_dense(p.channels_last);
  require_output(grad_input, grad_input, grad_input.shape, {&grad_output}, p.channels_last);
  py::gil_scoped_release release;
  avg_pool2d_backward(p, grad_output.data, grad_input.data);
}

// ---------------------------------------------------------------------------------------------

static py::dict build_info() {
  py::dict d;
  d["isa"] = isa_name(active_isa());
  py::list isas;
  for (Isa isa : supported_isas()) isas.append(isa_name(isa));
  d["supported_isas"] = isas;
  py::dict tiles, blocking;  // {isa: {dtype: (MR, NR)}}, {isa: {dtype: {kc, mc, nc}}}
  for (Isa isa : supported_isas()) {
    py::dict tile_of, blocks_of;
    for (DType t : {DType::f32, DType::f64}) {
      GemmTile tile = gemm_cpu_tile(t, isa);
      tile_of[dtype_name(t)] = py::make_tuple(tile.mr, tile.nr);
      blocks_of[dtype_name(t)] = py::dict(py::arg("kc") = tile.kc, py::arg("mc") = tile.mc, py::arg("nc") = tile.nc);
    }
    tiles[isa_name(isa)] = tile_of;
    blocking[isa_name(isa)] = blocks_of;
  }
  d["gemm_tiles"] = tiles;
  d["gemm_blocking"] = blocking;
  const CacheSizes& caches = host_caches();  // what the GEMM blocking is sized for
  d["caches"] = py::dict(py::arg("l1d") = caches.l1d, py::arg("l2") = caches.l2,
                         py::arg("l3_per_core") = caches.l3_per_core);
  d["num_threads"] = get_num_threads();
  d["openmp"] = openmp_enabled();
  d["cuda_built"] = bool(CONVFORGE_WITH_CUDA);
  py::list archs;
#if CONVFORGE_WITH_CUDA
  for (const auto& a : cuda::architectures()) archs.append(a);
  d["cuda_devices"] = cuda::device_count();
#else
  d["cuda_devices"] = 0;
#endif
  d["cuda_architectures"] = archs;
  py::list backends;
  backends.append("cpu");
  if (CONVFORGE_WITH_CUDA_EMULATION) backends.append("cuda-emulated");
  d["backends"] = backends;
  d["compiler"] = CONVFORGE_COMPILER;
  d["pybind11"] = std::to_string(PYBIND11_VERSION_MAJOR) + "." +
                  std::to_string(PYBIND11_VERSION_MINOR) + "." +
                  std::to_string(PYBIND11_VERSION_PATCH);
  return d;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "convforge compiled kernels (private: use the convforge package)";
  py::register_exception_translator([](std::exception_ptr e) {
    try {
      if (e) std::rethrow_exception(e);
    } catch (const TypeError& err) {
      PyErr_SetString(PyExc_TypeError, err.what());
    } catch (const ValueError& err) {
      PyErr_SetString(PyExc_ValueError, err.what());
    }
  });

  m.def("info", &build_info);
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); }, py::arg("name"));

  // Private: the Python layer sets the caller's device and stream before an op on GPU arrays.
  m.def("_set_cuda_context", [](int device, uintptr_t stream) {
    set_cuda_context(device, reinterpret_cast<void*>(stream));
  }, py::arg("device"), py::arg("stream"));

  m.def("get_host_device", [] { return std::string(device_name(host_array_device())); });
  m.def("set_host_device", [](const std::string& name) {
    set_host_array_device(host_device_from_name(name));
  }, py::arg("name"));

  m.def("conv2d_output_size",
        [](int64_t h, int64_t w, Pair kernel, Pair stride, Quad padding, Pair dilation) {
          conv2d_check_window(kernel.data(), stride.data(), padding.data(), dilation.data());
          return Pair{conv_out_size(h, kernel[0], stride[0], padding[0], padding[1], dilation[0]),
                      conv_out_size(w, kernel[1], stride[1], padding[2], padding[3], dilation[1])};
        });
  m.def("pool2d_output_size",
        [](int64_t h, int64_t w, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
          require_window_param("kernel_size", kernel);
          require_window_param("stride", stride);
          require_window_param("padding", padding);
          require_window_param("dilation", dilation);
          return Pair{pool_out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
                      pool_out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)};
        });

#if CONVFORGE_WITH_CUDA_EMULATION
  // Private, for the emulator's own tests: deliberately broken kernels and the thread-order seed.
  m.def("_emu_run_kernel", [](const std::string& name, py::array_t<float, py::array::c_style> data) {
    auto buf = data.mutable_unchecked();
    float* ptr = buf.ndim() ? buf.mutable_data(0) : nullptr;
    const int64_t count = data.size();
    py::gil_scoped_release release;
    cuda_emulated::run_broken_kernel(name, ptr, count);
  });
  m.def("_emu_set_seed", [](uint64_t seed) { cuda_emulated::set_seed(seed); }, py::arg("seed"));
#endif

  // Machine probes for the benchmark harness (private).
  m.def("_probe_fma_gflops",
        [](const std::string& isa, int threads, double min_seconds) {
          const Isa chosen = isa_from_name(isa);
          py::gil_scoped_release release;
          return measure_fma_gflops(chosen, threads, min_seconds);
        },
        py::arg("isa"), py::arg("threads"), py::arg("min_seconds") = 0.2);
  m.def("_probe_memory_gbps",
        [](const std::string& kind, int64_t bytes_per_array, int threads, int repeats) {
          CHECK(kind == "copy" || kind == "triad", "kind: expected 'copy' or 'triad', got '", kind, "'");
          py::gil_scoped_release release;
          return measure_memory_gbps(kind == "triad", bytes_per_array, threads, repeats);
        },
        py::arg("kind"), py::arg("bytes_per_array"), py::arg("threads"), py::arg("repeats") = 5);

  // The CPU conv2d algorithm list and chooser.
  m.def("conv2d_algorithms", [] {
    py::list names;
    for (int i = 0; i < conv2d_cpu_algorithm_count(); ++i)
      names.append(py::make_tuple(conv2d_cpu_algorithm_name(i), conv2d_cpu_algorithm_requires(i)));
    return names;
  });
  m.def("conv2d_chosen_algorithm",
        [](const py::handle& input_obj, const py::handle& weight_obj, Pair stride, Quad padding,
           Pair dilation, int64_t groups, int pass, const std::string& algorithm, bool channels_last) {
          const View input = to_view(input_obj, "input"), weight = to_view(weight_obj, "weight");
          Conv2dParams p =
              conv_params(input, weight, stride, padding, dilation, groups, {&input}, {&weight});
          p.algorithm = algorithm.c_str();
          p.channels_last = p.weight_channels_last = channels_last;
          return std::string(conv2d_cpu_chosen_algorithm(p, pass));
        });
  m.def("conv2d_winograd_enabled", &conv2d_winograd_enabled);
  m.def("set_conv2d_winograd_enabled", &set_conv2d_winograd_enabled, py::arg("enabled"));

  m.def("gemm", &py_gemm);
  m.def("conv2d_forward", &py_conv2d_forward, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("output"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("algorithm") = "auto");
  m.def("conv2d_backward", &py_conv2d_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("grad_input"), py::arg("grad_weight"), py::arg("grad_bias"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("algorithm") = "auto");
  m.def("max_pool2d_forward", &py_max_pool2d_forward);
  m.def("max_pool2d_backward", &py_max_pool2d_backward);
  m.def("avg_pool2d_forward", &py_avg_pool2d_forward);
  m.def("avg_pool2d_backward", &py_avg_pool2d_backward);
}
