// HvdSoftmaxXent and HvdSoftmaxXentGrad: softmax cross-entropy of integer labels over wide rows (BERT's
// masked-LM logits, [predictions, 30522]), reading each row twice forward and once backward.
//
// Forward, per row x of C logits with label y:
//   top   = max_j x_j;  predicted = the first j with x_j == top (tf.argmax's tie rule)
//   total = sum_j exp(x_j - top)
//   loss  = log(total) - (x_y - top)
// Backward, given dy per row: dx_j = exp(x_j - top) * (dy / total) - (j == y) * dy.
//
// TensorFlow's ops for the same formulas (models/ops.py, the path on GPU and under XLA) write
// x - top and its exp as [rows, C] tensors and read them again: four reads and two writes of the
// logits forward. Here nothing of size C is written forward, and backward writes only dx. Rows are
// spread over the intra-op threads; within a row the max, the exp and the sum are Eigen's vectorised
// expressions. A row with a NaN gives a NaN loss (its total is NaN). A label outside [0, C) is an
// InvalidArgument error, as for tf.nn.sparse_softmax_cross_entropy_with_logits on CPU.
#define EIGEN_USE_THREADS
#include <cmath>
#include <limits>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;
using Row = Eigen::TensorMap<Eigen::Tensor<const float, 1, Eigen::RowMajor, Eigen::DenseIndex>, Eigen::Unaligned>;
using MutableRow = Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor, Eigen::DenseIndex>, Eigen::Unaligned>;

REGISTER_OP("HvdSoftmaxXent")
    .Input("logits: float")
    .Input("labels: int32")
    .Output("loss: float")
    .Output("predicted: int32")
    .Output("top: float")
    .Output("total: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle logits, labels;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &logits));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &labels));
      shape_inference::DimensionHandle rows;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(logits, 0), c->Dim(labels, 0), &rows));
      for (int i = 0; i < 4; ++i) c->set_output(i, c->Vector(rows));
      return absl::OkStatus();
    })
    .Doc("Softmax cross-entropy of integer labels, row by row (see softmax_xent.cc).");

REGISTER_OP("HvdSoftmaxXentGrad")
    .Input("logits: float")
    .Input("labels: int32")
    .Input("top: float")
    .Input("total: float")
    .Input("dy: float")
    .Output("dlogits: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("The gradient of HvdSoftmaxXent's loss with respect to the logits.");

absl::Status CheckInputs(const Tensor& logits, const Tensor& labels) {
  if (!TensorShapeUtils::IsMatrix(logits.shape()) || !TensorShapeUtils::IsVector(labels.shape()) ||
      logits.dim_size(0) != labels.dim_size(0)) {
    return errors::InvalidArgument("HvdSoftmaxXent: logits must be [rows, classes] and labels [rows]; got ",
                                   logits.shape().DebugString(), " and ", labels.shape().DebugString());
  }
  const int64_t classes = logits.dim_size(1);
  const auto y = labels.flat<int32>();
  for (int64_t r = 0; r < y.size(); ++r) {
    if (y(r) < 0 || y(r) >= classes) {
      return errors::InvalidArgument("Received a label value of ", y(r), " which is outside the valid range of [0, ",
                                     classes, ").  Label values: row ", r);
    }
  }
  return absl::OkStatus();
}

class HvdSoftmaxXentOp : public OpKernel {
 public:
  explicit HvdSoftmaxXentOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& logits = ctx->input(0);
    const Tensor& labels = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckInputs(logits, labels));
    const int64_t rows = logits.dim_size(0), classes = logits.dim_size(1);
    Tensor *loss, *predicted, *top, *total;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows}), &loss));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows}), &predicted));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows}), &top));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({rows}), &total));
    OP_REQUIRES(ctx, classes > 0 || rows == 0, errors::InvalidArgument("HvdSoftmaxXent: no classes"));
    const float* x = logits.flat<float>().data();
    const int32* y = labels.flat<int32>().data();
    float* loss_out = loss->flat<float>().data();
    int32* predicted_out = predicted->flat<int32>().data();
    float* top_out = top->flat<float>().data();
    float* total_out = total->flat<float>().data();
    auto work = [=](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index r = begin; r < end; ++r) {
        const float* xr = x + r * classes;
        Row row(xr, classes);
        const Eigen::Tensor<float, 0, Eigen::RowMajor> max = row.maximum();
        float m = max();
        int64_t j = 0;
        while (j < classes && !(xr[j] == m)) ++j;
        if (j == classes) {  // no element equals the max: the row has a NaN
          j = 0;
          m = std::numeric_limits<float>::quiet_NaN();
        }
        const Eigen::Tensor<float, 0, Eigen::RowMajor> sum = (row - m).exp().sum();
        predicted_out[r] = static_cast<int32>(j);
        top_out[r] = m;
        total_out[r] = sum();
        loss_out[r] = std::log(sum()) - (xr[y[r]] - m);
      }
    };
    ctx->eigen_device<CPUDevice>().parallelFor(rows, Eigen::TensorOpCost(8.0 * classes, 0, 12.0 * classes), work);
  }
};

class HvdSoftmaxXentGradOp : public OpKernel {
 public:
  explicit HvdSoftmaxXentGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& logits = ctx->input(0);
    const Tensor& labels = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckInputs(logits, labels));
    const int64_t rows = logits.dim_size(0), classes = logits.dim_size(1);
    for (int i = 2; i < 5; ++i) {
      OP_REQUIRES(ctx, TensorShapeUtils::IsVector(ctx->input(i).shape()) && ctx->input(i).dim_size(0) == rows,
                  errors::InvalidArgument("HvdSoftmaxXentGrad: input ", i, " must be [", rows, "], got ",
                                          ctx->input(i).shape().DebugString()));
    }
    Tensor* dlogits;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, logits.shape(), &dlogits));
    const float* x = logits.flat<float>().data();
    const int32* y = labels.flat<int32>().data();
    const float* top = ctx->input(2).flat<float>().data();
    const float* total = ctx->input(3).flat<float>().data();
    const float* dy = ctx->input(4).flat<float>().data();
    float* dx = dlogits->flat<float>().data();
    auto work = [=](Eigen::Index begin, Eigen::Index end) {
      for (Eigen::Index r = begin; r < end; ++r) {
        MutableRow out(dx + r * classes, classes);
        out = (Row(x + r * classes, classes) - top[r]).exp() * (dy[r] / total[r]);
        dx[r * classes + y[r]] -= dy[r];
      }
    };
    ctx->eigen_device<CPUDevice>().parallelFor(rows, Eigen::TensorOpCost(4.0 * classes, 4.0 * classes, 12.0 * classes),
                                               work);
  }
};

REGISTER_KERNEL_BUILDER(Name("HvdSoftmaxXent").Device(DEVICE_CPU), HvdSoftmaxXentOp);
REGISTER_KERNEL_BUILDER(Name("HvdSoftmaxXentGrad").Device(DEVICE_CPU), HvdSoftmaxXentGradOp);

}  // namespace
}  // namespace tensorflow
