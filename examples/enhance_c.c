/* Restores the faces of one image through libgpen's C API.
 *
 *   enhance_c MODEL INPUT OUTPUT [--aligned] [--detector D] [--strength S] [--offline]
 *
 * MODEL and D are paths or registered names (`gpen models list`); "random:256" needs no file.
 * Exit codes: 0 ok, 1 a libgpen error (its message on stderr), 2 bad usage. */
#include <gpen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
  fprintf(stderr, "usage: enhance_c MODEL INPUT OUTPUT [--aligned] [--detector D] [--strength 0..100] [--offline]\n");
  return 2;
}

static int report(const char* what, gpen_status s) {
  fprintf(stderr, "enhance_c: %s: %s: %s\n", what, gpen_status_string(s), gpen_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 4) return usage();
  gpen_options options;
  gpen_options_init(&options);
  options.model = argv[1];
  gpen_enhance_options enhance;
  gpen_enhance_options_init(&enhance);
  for (int i = 4; i < argc; ++i) {
    if (strcmp(argv[i], "--aligned") == 0) enhance.aligned = 1;
    else if (strcmp(argv[i], "--offline") == 0) options.offline = 1;
    else if (strcmp(argv[i], "--detector") == 0 && i + 1 < argc) options.detector = argv[++i];
    else if (strcmp(argv[i], "--strength") == 0 && i + 1 < argc) enhance.strength = atof(argv[++i]);
    else return usage();
  }

  gpen_context* ctx = NULL;
  gpen_status s = gpen_open(&options, &ctx);
  if (s != GPEN_OK) return report("cannot load the models", s);

  gpen_image in = {0}, out = {0};
  int faces = 0, code = 0;
  if ((s = gpen_image_load(argv[2], &in)) != GPEN_OK) code = report("cannot read the input", s);
  else if ((s = gpen_enhance_image(ctx, &in, &enhance, &out, &faces)) != GPEN_OK) code = report("restoration failed", s);
  else if ((s = gpen_image_save(argv[3], &out)) != GPEN_OK) code = report("cannot write the output", s);
  else printf("%s: %d face(s) restored -> %s (libgpen %s)\n", argv[2], faces, argv[3], gpen_version());

  gpen_image_free(&in);
  gpen_image_free(&out);
  gpen_close(ctx);
  return code;
}
