// HvdGelu and HvdGeluGrad: exact GELU and its gradient, each one pass over its tensors.
//
//   cdf = 0.5 * (1 + erf(x / sqrt(2)))            (the standard normal CDF, Phi)
//   y   = x * cdf                                  (Hendrycks & Gimpel 2016, arXiv:1606.08415)
//   dx  = dy * (cdf + x * exp(-x^2 / 2) / sqrt(2 pi))
//
// TensorFlow's ops for the same formulas (models/ops.py, the path on GPU, under XLA and for other
// dtypes) run five element-wise ops forward and seven backward, each reading and writing a tensor of
// x's size: at BERT's feed-forward width that is [tokens, 4H] per op. Here forward reads x and writes y;
// backward reads x and dy, recomputes cdf and writes dx. erf and exp are Eigen's vectorised functions
// (those of TensorFlow's Erf and Exp ops), and the work is spread over the intra-op threads by Eigen.
#define EIGEN_USE_THREADS
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;

constexpr float kSqrtHalf = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

absl::Status SameShapeAsX(shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(0));
  return absl::OkStatus();
}

REGISTER_OP("HvdGelu")
    .Input("x: float")
    .Output("y: float")
    .SetShapeFn(SameShapeAsX)
    .Doc("Exact GELU, x * Phi(x) (see gelu.cc).");

REGISTER_OP("HvdGeluGrad")
    .Input("x: float")
    .Input("dy: float")
    .Output("dx: float")
    .SetShapeFn(SameShapeAsX)
    .Doc("The gradient of HvdGelu: dy * (Phi(x) + x * phi(x)).");

class HvdGeluOp : public OpKernel {
 public:
  explicit HvdGeluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    auto in = x.flat<float>();
    y->flat<float>().device(ctx->eigen_device<CPUDevice>()) = in * (((in * kSqrtHalf).erf() + 1.0f) * 0.5f);
  }
};

class HvdGeluGradOp : public OpKernel {
 public:
  explicit HvdGeluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& dy = ctx->input(1);
    OP_REQUIRES(ctx, x.shape() == dy.shape(),
                errors::InvalidArgument("HvdGeluGrad: x and dy must have one shape; got ", x.shape().DebugString(),
                                        " and ", dy.shape().DebugString()));
    Tensor* dx;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    auto in = x.flat<float>();
    auto cdf = ((in * kSqrtHalf).erf() + 1.0f) * 0.5f;
    auto pdf = (in.square() * -0.5f).exp() * kInvSqrt2Pi;
    dx->flat<float>().device(ctx->eigen_device<CPUDevice>()) = dy.flat<float>() * (cdf + in * pdf);
  }
};

REGISTER_KERNEL_BUILDER(Name("HvdGelu").Device(DEVICE_CPU), HvdGeluOp);
REGISTER_KERNEL_BUILDER(Name("HvdGeluGrad").Device(DEVICE_CPU), HvdGeluGradOp);

}  // namespace
}  // namespace tensorflow
