/* Internal types shared by the library's modules (not installed). */
#ifndef EDGESKD_INTERNAL_H
#define EDGESKD_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "edgeskd.h"

enum { EDGESKD_ERR_LEN = 1024 };

enum { MAX_MANIFEST_BYTES = 16 * 1024 * 1024 };

/* A file the manifest names, with what its "files" record says it must be. */
typedef struct bundle_file {
    char *path;        /* bundle folder + "/" + name; NULL when the manifest names no such file */
    const char *name;  /* the name inside the bundle (points into path) */
    char sha256[65];   /* lower-case hex from manifest.json "files" */
    uint64_t bytes;
} bundle_file;

/* Everything the runtime needs from manifest.json (schema_version 1). Paths are joined with the bundle folder. */
typedef struct manifest {
    bundle_file onnx;
    bundle_file openvino_xml;
    bundle_file openvino_bin;
    bundle_file tensorrt;
    char ov_precision_hint[8]; /* "f32" unless the manifest's primary model asks for bf16 / f16 */
    char *input_name;
    char *output_name;
    int64_t input_shape[4]; /* 1, C, S, S */
    size_t num_classes;
    /* preprocess record */
    size_t size;
    size_t channels;       /* 1 or 3 */
    float mean[3];
    float std[3];
    char **labels;
    size_t num_labels;
} manifest;

/* Reads manifest.json after checking it against manifest.sha256 (and `pinned_sha256` when not NULL). */
edgeskd_status manifest_load(const char *bundle_dir, const char *pinned_sha256, manifest *out, char *err,
                             size_t err_size);
void manifest_free(manifest *m);

/* Writes "what: detail" style messages; never overflows. */
void set_error(char *err, size_t err_size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Integrity (integrity.c). read_regular_file: the whole file at `path`, refusing symlinks, non-regular files and
 * files over max_bytes; returns a malloc'd buffer (NUL-terminated one byte past len) in *out. */
edgeskd_status read_regular_file(const char *path, size_t max_bytes, edgeskd_status too_big, uint8_t **out,
                                 size_t *len, char *err, size_t err_size);
/* Checks the manifest bytes against bundle_dir/manifest.sha256 and the pinned digest (NULL: none). */
edgeskd_status check_manifest_digest(const char *bundle_dir, const uint8_t *text, size_t len, const char *pinned,
                                     char *err, size_t err_size);
/* Reads a bundle file the manifest names and checks its size and sha256 against the record; *out is malloc'd. */
edgeskd_status read_verified(const bundle_file *f, uint8_t **out, size_t *len, char *err, size_t err_size);

/* Step 1-4 of the pixel pipeline (see edgeskd.h / edgeskd/data/preprocess.py). `out` holds C*S*S floats. */
edgeskd_status preprocess_pixels(const manifest *m, const uint8_t *pixels, size_t width, size_t height,
                                 size_t channels, size_t row_stride, float *out, char *err, size_t err_size);

/* A backend: an opaque state plus two functions. run() writes num_classes logits. */
typedef struct backend_impl {
    void *state;
    edgeskd_status (*run)(void *state, float *input, size_t input_floats, float *logits, size_t num_logits,
                          char *err, size_t err_size);
    void (*destroy)(void *state);
} backend_impl;

#ifdef EDGESKD_WITH_ONNXRUNTIME
edgeskd_status backend_ort_open(const manifest *m, const edgeskd_options *opts, backend_impl *out, char *err,
                                size_t err_size);
#endif
#ifdef EDGESKD_WITH_OPENVINO
edgeskd_status backend_ov_open(const manifest *m, const edgeskd_options *opts, backend_impl *out, char *err,
                               size_t err_size);
#endif

#endif
