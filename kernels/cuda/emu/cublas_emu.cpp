// The part of cuBLAS that gpen's CUDA backend calls (Linear layers: one SGEMM), on the CPU,
// column-major as cuBLAS defines it; alpha and beta host pointers (the backend's pointer mode).
#include <cublas_v2.h>

#include "kernels/cuda/emu/runtime_emu.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  *h = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t, cublasPointerMode_t mode) {
  return mode == CUBLAS_POINTER_MODE_HOST ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  if (m < 0 || n < 0 || k < 0 || ldc < m || lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n))
    return CUBLAS_STATUS_INVALID_VALUE;
  gpen::cuda::emu::enqueue(h->stream, [=, a = *alpha, b = *beta] {
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float acc = 0.f;
        for (int l = 0; l < k; ++l) {
          const float av = ta == CUBLAS_OP_N ? A[i + int64_t(l) * lda] : A[l + int64_t(i) * lda];
          const float bv = tb == CUBLAS_OP_N ? B[l + int64_t(j) * ldb] : B[j + int64_t(l) * ldb];
          acc += av * bv;
        }
        float& c = C[i + int64_t(j) * ldc];
        c = a * acc + (b != 0.f ? b * c : 0.f);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
