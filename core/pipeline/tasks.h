// GPEN's other tasks, run on a whole (already aligned) face image: no detection, no paste-back.
// They use checkpoints with the GPEN-BFR layout (GPEN-Colorization-1024, GPEN-Inpainting-1024), so
// any GpenRunner works; the network size S is the model's.
//
// Colorization, as GPEN's face_colorization.py: the picture is read as gray (colour input is
// converted with OpenCV's BGR2GRAY weights, 0.299 R + 0.587 G + 0.114 B), replicated to three
// channels, resized to S x S (bilinear), run. An S x S input gives the S x S output. Any other
// size gets GPEN's post_process: the output is resized back to the input size and its luma is
// replaced by the input's (YUV), so the colours come from GPEN and the detail from the original.
//
// Inpainting, as GPEN's demo.py --task FaceInpainting: the pixels to fill are painted white
// (255, 255, 255, the demo's brush colour) in the image, which is resized to S x S and run; the
// network's output is the result. The mask is an image of the same size; a pixel is to be filled
// where the mask (its first channel, or gray) is >= 128, i.e. white strokes on black. The output
// is resized back to the input size when that differs from S x S.
#pragma once
#include "core/image.h"
#include "core/models/gpen.h"

namespace gpen {

Image colorize(const Image& image, GpenRunner& runner);
Image inpaint(const Image& image, const Image& mask, GpenRunner& runner);

// The S x S RGB image each task feeds the network (for tests and for saving crops).
Image colorize_input(const Image& image, int size);
Image inpaint_input(const Image& image, const Image& mask, int size);

// OpenCV's 8-bit RGB -> gray (cv2.cvtColor BGR2GRAY): (4899 R + 9617 G + 1868 B + 8192) >> 14.
uint8_t gray_of(uint8_t r, uint8_t g, uint8_t b);

}  // namespace gpen
