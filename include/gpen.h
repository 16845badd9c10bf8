/* libgpen: GPEN blind face restoration from C (or anything with a C FFI).
 *
 *   gpen_options o;
 *   gpen_options_init(&o);
 *   o.model = "GPEN-BFR-512";                 // a path, a registered name, or "random:512"
 *   o.detector = "RetinaFace-MobileNet0.25";  // NULL: aligned face crops only
 *   gpen_context* ctx;
 *   if (gpen_open(&o, &ctx) != GPEN_OK) { fprintf(stderr, "%s\n", gpen_last_error()); ... }
 *   gpen_image in, out;
 *   gpen_image_load("photo.jpg", &in);
 *   gpen_enhance_options e;
 *   gpen_enhance_options_init(&e);
 *   gpen_enhance_image(ctx, &in, &e, &out, NULL);
 *   gpen_image_save("restored.png", &out);
 *   gpen_image_free(&in); gpen_image_free(&out); gpen_close(ctx);
 *
 * Errors: every call returns a gpen_status; on failure gpen_last_error() gives a one-line
 * message for the calling thread. Threads: a context serialises its own calls (one enhancement at
 * a time); use one context per thread for parallel work. Registered model names are downloaded
 * into the model cache when missing unless gpen_options.offline is set (see docs/MODELS.md).
 * Link: -lgpen (shared), or libgpen.a plus its dependencies (pkg-config --static --libs gpen).
 */
#ifndef GPEN_H
#define GPEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GPEN_API __attribute__((visibility("default")))
#else
#define GPEN_API
#endif

#define GPEN_API_VERSION 1

typedef enum gpen_status {
  GPEN_OK = 0,
  GPEN_ERROR_INVALID_ARGUMENT = 1, /* a NULL pointer, bad image shape, out-of-range option */
  GPEN_ERROR_MODEL = 2,            /* a model missing, unreadable, of the wrong layout, or not downloadable */
  GPEN_ERROR_IMAGE = 3,            /* an image file unreadable, undecodable or unwritable */
  GPEN_ERROR_FAILED = 4,           /* the restoration itself failed */
  GPEN_ERROR_OUT_OF_MEMORY = 5,
  GPEN_ERROR_INTERNAL = 6          /* a bug: please report it with gpen_last_error() */
} gpen_status;

typedef struct gpen_options {
  const char* model;      /* GPEN checkpoint: path, registered name, or "random:SIZE[:SEED]" (required) */
  const char* detector;   /* RetinaFace checkpoint: path or registered name; NULL: aligned crops only */
  const char* models_dir; /* model cache folder; NULL: $GPEN_MODELS or $XDG_CACHE_HOME/gpen */
  int offline;            /* nonzero: never download a missing model */
  int threads;            /* CPU threads; 0: all */
} gpen_options;

typedef enum gpen_mode { GPEN_MODE_NATURAL = 0, GPEN_MODE_STRONG = 1, GPEN_MODE_DETAIL = 2 } gpen_mode;

/* The controls of `gpen enhance` (docs/CONTROLS.md); gpen_enhance_options_init() sets its defaults. */
typedef struct gpen_enhance_options {
  int aligned;            /* nonzero: the image is an FFHQ-aligned face crop (no detection, no paste-back) */
  double strength;        /* 0..100: 0 returns the input, 100 GPEN's output */
  int mode;               /* a gpen_mode (an int, so that any value a caller passes is well-defined) */
  double denoise;         /* 0..100, whole photo, before detection */
  double sharpen;         /* 0..100, whole photo, after paste-back */
  double contrast;        /* -100..100, 0 = unchanged */
  double brightness;      /* -100..100, 0 = unchanged */
  int skin_protect;       /* nonzero: keep the original's skin colour in restored faces */
  int detail;             /* nonzero: add the original's fine texture back into restored faces */
  float det_threshold;    /* face score threshold, 0..1 */
  int max_faces;          /* restore at most this many faces (highest scores); 0: all */
} gpen_enhance_options;

/* Interleaved 8-bit pixels, rows `stride` bytes apart; channels 1 (gray), 3 (RGB) or 4 (RGBA). */
typedef struct gpen_image {
  int width, height, channels;
  size_t stride;
  uint8_t* data;
} gpen_image;

typedef struct gpen_context gpen_context;

GPEN_API void gpen_options_init(gpen_options* options);
GPEN_API void gpen_enhance_options_init(gpen_enhance_options* options);

/* Loads the models (downloading registered ones when needed). On success *ctx is set. */
GPEN_API gpen_status gpen_open(const gpen_options* options, gpen_context** ctx);

/* Restores the faces of `in` into a new image `*out` (free it with gpen_image_free). With a
 * detector, whole photos: `*faces` (may be NULL) receives the number of faces restored. Without one,
 * only options->aligned = 1 is accepted. `options` may be NULL (defaults). */
GPEN_API gpen_status gpen_enhance_image(gpen_context* ctx, const gpen_image* in, const gpen_enhance_options* options,
                                        gpen_image* out, int* faces);

GPEN_API void gpen_close(gpen_context* ctx);

/* PNG, JPEG or WebP (by content when loading, by extension when saving). */
GPEN_API gpen_status gpen_image_load(const char* path, gpen_image* out);
GPEN_API gpen_status gpen_image_save(const char* path, const gpen_image* img);
/* Frees pixels allocated by libgpen and zeroes the struct; safe on a zeroed struct. */
GPEN_API void gpen_image_free(gpen_image* img);

/* The message of the last failed call on this thread ("" when none). Valid until the next call. */
GPEN_API const char* gpen_last_error(void);
/* "invalid argument", "model error", ... */
GPEN_API const char* gpen_status_string(gpen_status status);
/* "0.1.0" */
GPEN_API const char* gpen_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GPEN_H */
