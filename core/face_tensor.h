// Conversions between 8-bit RGB face crops and GPEN's input/output tensors, exactly as GPEN's
// face model does them: x / 255 * 2 - 1 in; (y + 1) / 2 clipped to [0, 1], * 255, truncated out.
#pragma once
#include <vector>

#include "core/backend.h"
#include "core/image.h"
#include "core/tensor.h"

namespace gpen {

class ThreadPool;

// N RGB images of the same size S x S -> [N][3][S][S] f32 in [-1, 1]; faces spread over `pool`.
Tensor faces_to_tensor(const std::vector<const Image*>& faces, ThreadPool* pool = nullptr);
// The same into `t`, which is reused when it is unshared and of that shape (else reallocated).
void faces_into_tensor(const std::vector<const Image*>& faces, Tensor& t, ThreadPool* pool = nullptr);
// Sample n of a [N][3][S][S] tensor -> S x S RGB image.
Image tensor_to_face(const Tensor& t, int n);
// Every sample, spread over `pool`.
std::vector<Image> tensor_to_faces(const Tensor& t, ThreadPool* pool = nullptr);

// The same on faces given as bytes (n faces of S x S x 3 at in[i] / out[i]): the float path of a
// batch that arrived as bytes (GpenRunner's shared runner).
void rgb_bytes_into_tensor(const uint8_t* const* in, int n, int S, Tensor& t, ThreadPool* pool = nullptr);
void tensor_into_rgb_bytes(const Tensor& t, uint8_t* const* out, ThreadPool* pool = nullptr);

// GPEN's scaling of faces_into_tensor and tensor_to_faces as a backend's byte I/O
// (Executable::run_rgb_bytes): the same levels, the same output rounding.
const RgbBytesIo& gpen_rgb_bytes_io();

}  // namespace gpen
