// Device selection and the CUDA module loader, on the CPU: `--device` parsing, the one clear
// message when CUDA is asked for but cannot be had, `auto` falling back to the CPU, and the
// out-of-memory policy (halve the batch down to 1, then the CPU) with a fake device backend.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <atomic>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/models/gpen.h"
#include "tests/test_gpen_util.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const std::string kUnavailable = "CUDA requested but unavailable: ";

CudaModule missing_module() { return CudaModule::load({"/nonexistent/dir/libgpen_cuda.so"}); }

}  // namespace

TEST_CASE("parse_device accepts auto, cpu, cuda and cuda:N", "[device]") {
  CHECK(parse_device("auto").kind == DeviceRequest::Kind::Auto);
  CHECK(parse_device("cpu").kind == DeviceRequest::Kind::Cpu);
  const DeviceRequest c = parse_device("cuda");
  CHECK(c.kind == DeviceRequest::Kind::Cuda);
  CHECK(c.index == 0);
  const DeviceRequest c3 = parse_device("cuda:3");
  CHECK(c3.kind == DeviceRequest::Kind::Cuda);
  CHECK(c3.index == 3);
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "CPU", ""})
    CHECK_THAT(error_of([&] { parse_device(bad); }), Catch::Contains("bad --device"));
}

TEST_CASE("parse_gpu_precision round-trips its names", "[device]") {
  for (GpuPrecision p : {GpuPrecision::FP32, GpuPrecision::TF32, GpuPrecision::FP16}) {
    GpuPrecision q = GpuPrecision::FP32;
    REQUIRE(parse_gpu_precision(gpu_precision_name(p), &q));
    CHECK(q == p);
  }
  GpuPrecision q;
  CHECK_FALSE(parse_gpu_precision("bf16", &q));
}

TEST_CASE("a missing CUDA module is one clear message, and auto falls back to the CPU", "[device]") {
  const CudaModule m = missing_module();
  CHECK_FALSE(m.usable());
  CHECK_THAT(m.why_unusable(), Catch::Contains("/nonexistent/dir/libgpen_cuda.so"));

  const std::string err = error_of([&] { select_device(parse_device("cuda"), GpuPrecision::FP32, m); });
  CHECK(err.rfind(kUnavailable, 0) == 0);
  CHECK_THAT(err, Catch::Contains("libgpen_cuda.so"));
  CHECK(err.find('\n') == std::string::npos);

  const SelectedDevice d = select_device(parse_device("auto"), GpuPrecision::FP32, m);
  CHECK_FALSE(d.is_cuda);
  REQUIRE(d.backend);
  CHECK(d.backend->name() == "cpu");
  CHECK_THAT(d.note, Catch::Contains("libgpen_cuda.so"));
}

TEST_CASE("a library that is not a gpen CUDA module is refused by name", "[device]") {
  const CudaModule m = CudaModule::load({"libm.so.6"});  // loads, but has no entry point
  CHECK_FALSE(m.usable());
  CHECK_THAT(m.why_unusable(), Catch::Contains("gpen_cuda_module_v1"));
}

// Without the driver no device can exist: the module (and cuDNN, cuBLAS behind it) is not loaded.
TEST_CASE("without the NVIDIA driver the CUDA module is not loaded at all", "[device]") {
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  const CudaModule m = CudaModule::load_if_driver({"/nonexistent/dir/libgpen_cuda.so"});
  CHECK_FALSE(m.usable());
  if (!driver) {
    CHECK_THAT(m.why_unusable(), Catch::StartsWith("no NVIDIA driver (libcuda.so.1"));
    CHECK(m.path().empty());
  } else {  // a driver: it went on to look for the module, which is missing here
    CHECK_THAT(m.why_unusable(), Catch::Contains("/nonexistent/dir/libgpen_cuda.so"));
  }
}

TEST_CASE("device cpu always gives the CPU backend, quietly", "[device]") {
  const SelectedDevice d = select_device(parse_device("cpu"), GpuPrecision::FP16, missing_module());
  CHECK_FALSE(d.is_cuda);
  CHECK(d.backend->name() == "cpu");
  CHECK(d.description == "cpu");
  CHECK(d.note.empty());
}

// The real module of this build: with a device it must give a CUDA backend; without one (or
// without a driver, or in a build without CUDA) the two failure paths must hold.
TEST_CASE("the real CUDA module: a backend when usable, else the clear message and a CPU fallback", "[device]") {
  const CudaModule& m = CudaModule::instance();
  if (m.usable()) {
    const SelectedDevice d = select_device(parse_device("cuda"), GpuPrecision::FP32);
    CHECK(d.is_cuda);
    CHECK_THAT(d.description, Catch::StartsWith("cuda:0 "));
    CHECK(select_device(parse_device("auto"), GpuPrecision::FP32).is_cuda);
    const std::string err = error_of([&] { select_device(parse_device("cuda:999"), GpuPrecision::FP32); });
    CHECK_THAT(err, Catch::StartsWith(kUnavailable) && Catch::Contains("does not exist"));
  } else {
    INFO("CUDA unusable here: " << m.why_unusable());
    CHECK_FALSE(m.why_unusable().empty());
    const std::string err = error_of([&] { select_device(parse_device("cuda"), GpuPrecision::FP32); });
    CHECK(err == kUnavailable + m.why_unusable());
    const SelectedDevice d = select_device(parse_device("auto"), GpuPrecision::FP32);
    CHECK_FALSE(d.is_cuda);
    CHECK(d.note == "auto chose the CPU: " + m.why_unusable());
  }
}

// --- the out-of-memory policy ---

namespace {

// y = 2x + 1 per element, recording every batch size it was asked to run.
struct FakeForward {
  int64_t max_ok;  // batches larger than this "run out of device memory"
  std::vector<int64_t>* calls;
  Tensor operator()(const Tensor& x) const {
    calls->push_back(x.dim(0));
    if (x.dim(0) > max_ok) throw OutOfDeviceMemory("cudaMalloc: out of memory (fake)");
    Tensor y = Tensor::empty(DType::F32, x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = 2 * x.data<float>()[i] + 1;
    return y;
  }
};

void check_doubled_plus_one(const Tensor& x, const Tensor& y) {
  REQUIRE(y.shape() == x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(y.data<float>()[i] == 2 * x.data<float>()[i] + 1);
}

}  // namespace

TEST_CASE("out of device memory halves the batch until it fits, keeping every sample", "[device]") {
  std::vector<int64_t> device_calls, cpu_calls;
  std::vector<std::string> warnings;
  OomFallbackForward f(FakeForward{3, &device_calls}, FakeForward{1 << 30, &cpu_calls}, 16,
                       [&](const std::string& w) { warnings.push_back(w); });
  const Tensor x = test::random_tensor({13, 2, 3}, 1);
  check_doubled_plus_one(x, f(x));
  CHECK(f.batch() == 3);  // 13 -> 6 -> 3
  CHECK_FALSE(f.on_cpu());
  CHECK(cpu_calls.empty());
  CHECK(device_calls == std::vector<int64_t>{13, 6, 3, 3, 3, 3, 1});
  REQUIRE(warnings.size() == 2);
  CHECK_THAT(warnings[0], Catch::Contains("retrying with batch 6"));
  CHECK_THAT(warnings[1], Catch::Contains("retrying with batch 3"));

  // The smaller batch sticks: the next call does not try 16 again.
  device_calls.clear();
  check_doubled_plus_one(x, f(x));
  CHECK(device_calls == std::vector<int64_t>{3, 3, 3, 3, 1});
}

TEST_CASE("out of device memory even for one sample moves everything to the CPU, with a warning", "[device]") {
  std::vector<int64_t> device_calls, cpu_calls;
  std::vector<std::string> warnings;
  OomFallbackForward f(FakeForward{0, &device_calls}, FakeForward{1 << 30, &cpu_calls}, 4,
                       [&](const std::string& w) { warnings.push_back(w); });
  const Tensor x = test::random_tensor({5, 7}, 2);
  check_doubled_plus_one(x, f(x));
  CHECK(f.on_cpu());
  CHECK(device_calls == std::vector<int64_t>{4, 2, 1});
  CHECK(cpu_calls == std::vector<int64_t>{1, 1, 1, 1, 1});
  REQUIRE(warnings.size() == 3);
  CHECK_THAT(warnings.back(), Catch::Contains("running on the CPU"));

  device_calls.clear();
  check_doubled_plus_one(x, f(x));
  CHECK(device_calls.empty());  // once on the CPU, it stays there
}

TEST_CASE("errors other than out-of-memory are not swallowed by the fallback", "[device]") {
  OomFallbackForward f([](const Tensor&) -> Tensor { throw Error("illegal memory access"); },
                       [](const Tensor& x) { return x; }, 4, nullptr);
  CHECK_THROWS_WITH(f(test::random_tensor({2, 3}, 3)), "illegal memory access");
  CHECK_FALSE(f.on_cpu());
}

namespace {

// A backend that runs on the CPU but "runs out of device memory" compiling graphs whose batch
// exceeds `max_batch`: the policy exercised through a real model and GpenRunner.
class OomAboveBatchBackend final : public Backend {
 public:
  explicit OomAboveBatchBackend(int64_t max_batch) : max_batch_(max_batch) {}
  std::string name() const override { return "fake-gpu"; }
  std::unique_ptr<Executable> compile(const Graph& g, const CompileOptions& opt) override {
    const int64_t batch = g.value(g.inputs().at(0)).shape[0];
    compiled.push_back(batch);
    if (batch > max_batch_) throw OutOfDeviceMemory("fake: arena of batch " + std::to_string(batch) + " does not fit");
    return cpu_->compile(g, opt);
  }
  std::vector<int64_t> compiled;

 private:
  int64_t max_batch_;
  std::unique_ptr<Backend> cpu_ = make_cpu_backend();
};

}  // namespace

TEST_CASE("the OOM policy around a GpenRunner gives the same faces as the CPU", "[device]") {
  test::TinyGpenFaces t(5, 4);
  auto fake = std::make_shared<OomAboveBatchBackend>(2);
  GpenRunner on_device(t.model, fake, t.opt);
  int warnings = 0;
  OomFallbackForward f([&](const Tensor& x) { return on_device.forward(x); },
                       [&](const Tensor& x) { return t.on_cpu.forward(x); }, 8, [&](const std::string&) { ++warnings; });
  const Tensor y = f(t.x);
  REQUIRE(y.shape() == t.expected.shape());
  CHECK(test::max_abs_diff(y.data<float>(), t.expected.data<float>(), size_t(y.numel())) < 1e-5);
  CHECK(f.batch() == 2);
  CHECK_FALSE(f.on_cpu());
  CHECK(warnings == 1);  // the whole 5 (batch 8 clipped to the input) fails, then batch 2 fits
  CHECK(fake->compiled == std::vector<int64_t>{5, 2, 1});
}

TEST_CASE("GpenRunner::enable_oom_fallback: halves the batch, then moves to the CPU, same faces", "[device]") {
  test::TinyGpenFaces t(5, 5);
  for (int64_t fits : {2, 0}) {  // batch 2 fits on the "device"; nothing fits
    auto fake = std::make_shared<OomAboveBatchBackend>(fits);
    GpenRunner runner(t.model, fake, t.opt);
    std::vector<std::string> warnings;
    runner.enable_oom_fallback([&](const std::string& w) { warnings.push_back(w); });
    const Tensor y = runner.forward(t.x);
    INFO("device fits batch " << fits);
    REQUIRE(y.shape() == t.expected.shape());
    CHECK(test::max_abs_diff(y.data<float>(), t.expected.data<float>(), size_t(y.numel())) < 1e-5);
    if (fits == 2) {
      CHECK(fake->compiled == std::vector<int64_t>{5, 2, 1});
      CHECK(warnings.size() == 1);
    } else {
      CHECK(fake->compiled == std::vector<int64_t>{5, 2, 1});
      REQUIRE(warnings.size() == 3);
      CHECK_THAT(warnings.back(), Catch::Contains("running on the CPU"));
      fake->compiled.clear();
      runner.forward(t.x);  // once on the CPU, it stays there
      CHECK(fake->compiled.empty());
    }
  }
}

#include "tools/bench_cuda.h"

TEST_CASE("bench lists: --batch-size 1,4,8,16 and --precision fp32,fp16", "[device]") {
  CHECK(cli::parse_int_list("1,4,8,16", "--batch-size") == std::vector<int>{1, 4, 8, 16});
  CHECK(cli::parse_int_list("7", "--batch-size") == std::vector<int>{7});
  for (const char* bad : {"", ",", "0", "1,x", "4,-2", "1.5"})
    CHECK_THAT(error_of([&] { cli::parse_int_list(bad, "--batch-size"); }), Catch::Contains("bad --batch-size"));
  CHECK(cli::split_list("fp32,fp16") == std::vector<std::string>{"fp32", "fp16"});
  CHECK(cli::split_list("fp16,") == std::vector<std::string>{"fp16"});
  CHECK(cli::split_list("").empty());
}

// --- the binary: `gpen bench --device` and `gpen enhance --device` ---
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace {

struct CliRun {
  int code;
  std::string err;
};

CliRun run_gpen(const std::string& args) {
  const std::string err_path = "/tmp/gpen_device_test_" + std::to_string(::getpid()) + ".err";
  const int status = std::system((test::cli_path() + " " + args + " >/dev/null 2>" + err_path).c_str());
  std::ifstream f(err_path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::remove(err_path.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

}  // namespace

TEST_CASE("gpen bench --device: cuda without CUDA is exit 1 and one line; cpu and auto run", "[device][device-cli]") {
  const CudaModule& m = CudaModule::instance();
  if (!m.usable()) {
    const CliRun r = run_gpen("bench --device cuda --size 256 --runs 1 --warmup 0");
    CHECK(r.code == 1);
    CHECK(r.err == "gpen: error: " + kUnavailable + m.why_unusable() + "\n");
  }
  CHECK(run_gpen("bench --device cpu --size 256 --runs 1 --warmup 0").code == 0);
  CHECK(run_gpen("bench --device auto --size 256 --batch-size 1 --runs 1 --warmup 0").code == 0);
  const CliRun bad = run_gpen("bench --device gpu --size 256");
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Catch::Contains("bad --device 'gpu'"));
  // enhance: an fp16 request on the CPU is refused by name, not silently run in fp32.
  const std::string face = std::string(GPEN_SOURCE_DIR) + "/../shared/images/aligned_ffhq_00002.png";
  const CliRun fp16 = run_gpen("enhance " + face + " -o /tmp/gpen_device_fp16.png --aligned --model random:256 "
                               "--device cpu --precision fp16");
  CHECK(fp16.code == 1);
  CHECK_THAT(fp16.err, Catch::Contains("--precision fp16 needs a CUDA device"));
}
