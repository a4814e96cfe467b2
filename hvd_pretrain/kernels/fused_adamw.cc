// HvdFusedAdamW: one AdamW step of one variable in one pass over its memory.
//
// For each element, in this order and in float32 (the same operations, in the same order, as
// TensorFlow's ResourceApplyGradientDescent for the decay followed by ResourceApplyAdam on the
// gradient multiplied by grad_scale, so the results are equal bit for bit):
//
//   g  = grad * grad_scale                      (the clip factor; 1 when not clipping)
//   w -= w * decay                              (decoupled weight decay, lr * wd; skipped when 0)
//   m += (g - m) * (1 - beta1)
//   v += (g * g - v) * (1 - beta2)
//   w -= (m * lr) / (sqrt(v) + epsilon)         (bias correction folded into lr and epsilon)
//
// The two stock kernels plus the clip's multiplication make three passes over the weights and
// two over the gradient, and the decay copies the weights first (its delta is a read of the
// variable it updates). Here each block of 2,048 elements is read once and written once.
// CPU only; the variables are locked as TensorFlow's own training ops lock them.
#define EIGEN_USE_THREADS
#include <algorithm>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;
constexpr int kFirstScalar = 4;
constexpr int kInputs = 10;

REGISTER_OP("HvdFusedAdamW")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("grad: float")
    .Input("grad_scale: float")
    .Input("decay: float")
    .Input("lr: float")
    .Input("beta1: float")
    .Input("beta2: float")
    .Input("epsilon: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle unused;
      for (int i = kFirstScalar; i < kInputs; ++i) {
        TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
      }
      return absl::OkStatus();
    })
    .Doc("One AdamW step of var, m and v, with the gradient scaled by grad_scale (see fused_adamw.cc).");

class HvdFusedAdamWOp : public OpKernel {
 public:
  explicit HvdFusedAdamWOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, /*do_lock=*/true,
                                                                        /*sparse=*/false, {0, 1, 2});
    for (int i = 0; i < 3; ++i) {  // before anything reads them as float32
      core::RefCountPtr<Var> resource;
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, i), &resource));
      OP_REQUIRES(ctx, resource->tensor()->dtype() == DT_FLOAT,
                  errors::InvalidArgument("HvdFusedAdamW: var, m and v must be float32 variables; input ", i,
                                          " is ", DataTypeString(resource->tensor()->dtype())));
    }
    Tensor var, m, v;
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, float>(ctx, 0, true, false, &var));
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, float>(ctx, 1, true, false, &m));
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, float>(ctx, 2, true, false, &v));
    OP_REQUIRES(ctx, var.IsInitialized() && m.IsInitialized() && v.IsInitialized(),
                errors::FailedPrecondition("HvdFusedAdamW: var, m or v is not initialized"));
    const Tensor& grad = ctx->input(3);
    OP_REQUIRES(ctx,
                var.shape().IsSameSize(m.shape()) && var.shape().IsSameSize(v.shape()) &&
                    var.shape().IsSameSize(grad.shape()),
                errors::InvalidArgument("HvdFusedAdamW: var, m, v and grad must have one shape; got ",
                                        var.shape().DebugString(), ", ", m.shape().DebugString(), ", ",
                                        v.shape().DebugString(), " and ", grad.shape().DebugString()));
    for (int i = kFirstScalar; i < kInputs; ++i) {
      OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(ctx->input(i).shape()),
                  errors::InvalidArgument("HvdFusedAdamW: input ", i, " must be a scalar, got ",
                                          ctx->input(i).shape().DebugString()));
    }
    const float scale = ctx->input(4).scalar<float>()();
    const float decay = ctx->input(5).scalar<float>()();
    const float lr = ctx->input(6).scalar<float>()();
    const float one_minus_beta1 = 1.0f - ctx->input(7).scalar<float>()();
    const float one_minus_beta2 = 1.0f - ctx->input(8).scalar<float>()();
    const float epsilon = ctx->input(9).scalar<float>()();

    float* w_data = var.flat<float>().data();
    float* m_data = m.flat<float>().data();
    float* v_data = v.flat<float>().data();
    const float* g_data = grad.flat<float>().data();
    using Map = Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor, Eigen::DenseIndex>, Eigen::Unaligned>;
    using ConstMap =
        Eigen::TensorMap<Eigen::Tensor<const float, 1, Eigen::RowMajor, Eigen::DenseIndex>, Eigen::Unaligned>;
    auto update = [=](Eigen::Index begin, Eigen::Index end) {
      constexpr Eigen::Index kBlock = 2048;  // 4 streams x 8 KB: the block stays in L1/L2 across the steps
      for (Eigen::Index start = begin; start < end; start += kBlock) {
        const Eigen::Index size = std::min(kBlock, end - start);
        Map w(w_data + start, size), mm(m_data + start, size), vv(v_data + start, size);
        auto g = ConstMap(g_data + start, size) * scale;
        if (decay != 0.0f) w -= w * decay;
        mm += (g - mm) * one_minus_beta1;
        vv += (g.square() - vv) * one_minus_beta2;
        w -= (mm * lr) / (vv.sqrt() + epsilon);
      }
    };
    // Per element: 16 bytes read (w, m, v, g), 12 written, about 12 float operations.
    ctx->eigen_device<CPUDevice>().parallelFor(var.NumElements(), Eigen::TensorOpCost(16, 12, 12), update);
  }
};

REGISTER_KERNEL_BUILDER(Name("HvdFusedAdamW").Device(DEVICE_CPU), HvdFusedAdamWOp);

}  // namespace
}  // namespace tensorflow
