// The ONNX runtime: OpenCV dnn (4.6 on Debian 12).
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "infer/model.h"

namespace medpipe {
namespace {

class OnnxModel : public Model {
 public:
  explicit OnnxModel(cv::dnn::Net net) : net_(std::move(net)) {}

  Result<std::vector<float>> Forward(const float* input, int n, int channels, int height, int width) override {
    try {
      const int shape[4] = {n, channels, height, width};
      // A header over the caller's buffer; setInput copies it into the net.
      cv::Mat blob(4, shape, CV_32F, const_cast<float*>(input));
      net_.setInput(blob);
      cv::Mat out = net_.forward();
      if (out.empty() || out.total() % static_cast<size_t>(n) != 0) {
        return Status::Invalid("the ONNX model's output does not split into one row per image");
      }
      if (out.depth() != CV_32F) out.convertTo(out, CV_32F);
      if (!out.isContinuous()) out = out.clone();
      outputs_ = static_cast<int>(out.total() / static_cast<size_t>(n));
      const float* p = out.ptr<float>();
      return std::vector<float>(p, p + out.total());
    } catch (const cv::Exception& e) {
      return Status::Invalid(std::string("OpenCV dnn: ") + e.what());
    }
  }

  int num_outputs() const override { return outputs_; }
  const char* runtime() const override { return "onnx"; }

 private:
  cv::dnn::Net net_;
  int outputs_ = 0;
};

}  // namespace

Result<std::unique_ptr<Model>> LoadOnnxModel(const fs::path& path, const ModelOptions&) {
  // OpenCV dnn's CPU back end parallelises over OpenCV's own framework
  // (oneTBB on Debian), so it shares the run's arena and needs no thread
  // setting of its own.
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(path.string());
    if (net.empty()) return Status::Invalid("model " + path.string() + ": OpenCV dnn read an empty network");
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    return std::unique_ptr<Model>(new OnnxModel(std::move(net)));
  } catch (const cv::Exception& e) {
    return Status::Invalid("model " + path.string() + ": OpenCV dnn cannot import it (" + e.err +
                           "); a torch export with Identity nodes on duplicated initializers is fixed by "
                           "scripts/prepare_onnx.py IN.onnx OUT.onnx");
  }
}

}  // namespace medpipe
