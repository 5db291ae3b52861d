/*
 * edgeskd.h - the edgeskd C runtime: run an edgeskd bundle (manifest.json + ONNX / OpenVINO IR) on a device.
 *
 * Typical use:
 *
 *     edgeskd_options opts;
 *     edgeskd_options_init(&opts);                 // ONNX Runtime, runtime's default threads, CPU
 *     char err[512];
 *     edgeskd_model *m = NULL;
 *     if (edgeskd_open("bundle_dir", &opts, &m, err, sizeof err) != EDGESKD_OK) { puts(err); return 1; }
 *     size_t k; edgeskd_num_labels(m, &k);
 *     float probs[16];
 *     if (edgeskd_classify_pixels(m, pixels, width, height, 1, 0, probs, k) != EDGESKD_OK)
 *         puts(edgeskd_last_error(m));
 *     edgeskd_close(m);
 *
 * Rules that hold for every function:
 *  - every function except the few that return strings returns an edgeskd_status; EDGESKD_OK is 0;
 *  - NULL pointers, buffers that are too short and sizes that do not match are errors, never crashes;
 *  - after a failed call on a handle, edgeskd_last_error(handle), called on the same thread, says what went wrong
 *    (one line, names the value or file and what was expected). The message lives in thread-local storage, like
 *    errno, so another thread's failure on a shared handle cannot overwrite it; edgeskd_open reports into the
 *    caller's buffer since no handle exists yet;
 *  - edgeskd_open checks the bundle's integrity before running anything from it: manifest.json must match the
 *    digest in manifest.sha256 beside it (and opts.manifest_sha256 when given), and every file it reads must be a
 *    regular file (no symlinks) with the size and sha256 that manifest.json records; else EDGESKD_ERR_INTEGRITY
 *    naming the file;
 *  - the library keeps no global mutable state besides that per-thread message; a handle's calls (getters
 *    included) are serialised by a lock inside the handle, so one handle may be shared by threads (for parallel
 *    inference open one handle per thread).
 */
#ifndef EDGESKD_H
#define EDGESKD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EDGESKD_API __declspec(dllexport)
#elif defined(__GNUC__)
#define EDGESKD_API __attribute__((visibility("default")))
#else
#define EDGESKD_API
#endif

#define EDGESKD_VERSION_MAJOR 0
#define EDGESKD_VERSION_MINOR 2 /* 0.2: EDGESKD_ERR_INTEGRITY, options flags/manifest_sha256 */
#define EDGESKD_VERSION_PATCH 0

typedef enum edgeskd_status {
    EDGESKD_OK = 0,
    EDGESKD_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, zero or inconsistent size, unknown option value */
    EDGESKD_ERR_BUFFER_TOO_SMALL = 2, /* an output buffer is shorter than needed */
    EDGESKD_ERR_SIZE_MISMATCH = 3,    /* an input buffer's length is not what the model takes */
    EDGESKD_ERR_IO = 4,               /* a bundle file is missing or unreadable */
    EDGESKD_ERR_MANIFEST = 5,         /* manifest.json is malformed or breaks the contract */
    EDGESKD_ERR_UNSUPPORTED = 6,      /* backend not built into this library, or device/feature not supported */
    EDGESKD_ERR_BACKEND = 7,          /* the inference runtime reported an error */
    EDGESKD_ERR_OUT_OF_MEMORY = 8,
    EDGESKD_ERR_INTEGRITY = 9         /* a bundle file's sha256/size/kind differs from the manifest, or the manifest
                                         from manifest.sha256 / the pinned digest (since 0.2) */
} edgeskd_status;

/* Bounds (the limits named in the error messages). */
#define EDGESKD_MAX_IMAGE_PIXELS (64u * 1024u * 1024u) /* width * height of one input image */
#define EDGESKD_MAX_INPUT_SIDE 4096                    /* the model input's side, from the manifest */
#define EDGESKD_MAX_THREADS 1024                       /* num_threads even with EDGESKD_OPEN_FORCE_THREADS */

/* edgeskd_options.flags */
#define EDGESKD_OPEN_FORCE_THREADS 1u /* allow num_threads above the machine's online cores (up to MAX_THREADS) */

typedef enum edgeskd_backend {
    EDGESKD_BACKEND_ONNXRUNTIME = 0, /* default: ONNX Runtime's C API, runs model.onnx */
    EDGESKD_BACKEND_OPENVINO = 1,    /* OpenVINO's C API, runs model.xml + model.bin */
    EDGESKD_BACKEND_TENSORRT = 2     /* reserved: not implemented in this version (EDGESKD_ERR_UNSUPPORTED) */
} edgeskd_backend;

typedef struct edgeskd_options {
    uint32_t struct_size;    /* sizeof(edgeskd_options); set by edgeskd_options_init, lets the struct grow */
    edgeskd_backend backend; /* default EDGESKD_BACKEND_ONNXRUNTIME */
    int32_t num_threads;     /* intra-op threads; 0 = the runtime's default; at most the online cores unless forced */
    const char *device;      /* NULL or "CPU" (default); "CUDA" (ONNX Runtime), "GPU"/"NPU"/... (OpenVINO) */
    /* since 0.2 (older callers pass a smaller struct_size and get the defaults below) */
    uint32_t flags;                 /* EDGESKD_OPEN_* bits; default 0 */
    const char *manifest_sha256;    /* NULL, or the 64 hex digits manifest.json must hash to (pins the bundle,
                                       so a manifest rewritten together with manifest.sha256 is still refused) */
} edgeskd_options;

typedef struct edgeskd_model edgeskd_model;

/* Fill `opts` with the defaults. */
EDGESKD_API void edgeskd_options_init(edgeskd_options *opts);

/* "0.2.0" */
EDGESKD_API const char *edgeskd_version(void);

/* Constant English name of a status ("EDGESKD_ERR_IO"); never NULL. */
EDGESKD_API const char *edgeskd_status_string(edgeskd_status status);

/* 1 when `backend` was compiled into this library, else 0. */
EDGESKD_API int edgeskd_backend_available(edgeskd_backend backend);

/*
 * Open the bundle in folder `bundle_dir` (it holds manifest.json). `opts` may be NULL for the defaults.
 * On success *out is a new handle (free it with edgeskd_close). On failure *out is NULL and, when `err` is not
 * NULL and err_size > 0, err holds a NUL-terminated message (truncated to err_size).
 */
EDGESKD_API edgeskd_status edgeskd_open(const char *bundle_dir, const edgeskd_options *opts, edgeskd_model **out,
                                        char *err, size_t err_size);

/* Free the handle and everything it owns. NULL is a no-op. */
EDGESKD_API void edgeskd_close(edgeskd_model *model);

/* The message of the calling thread's last call if that call was on this handle and failed, else "".
 * Thread-local: valid until this thread's next edgeskd call. */
EDGESKD_API const char *edgeskd_last_error(const edgeskd_model *model);

/* The model input's shape, NCHW: shape[0] = 1, shape[1] = channels, shape[2] = height, shape[3] = width. */
EDGESKD_API edgeskd_status edgeskd_input_shape(const edgeskd_model *model, int64_t shape[4]);

/* Number of floats in one model input (C * H * W). */
EDGESKD_API edgeskd_status edgeskd_input_size(const edgeskd_model *model, size_t *out_floats);

/* Number of labels, which is also the number of probabilities that classify writes. */
EDGESKD_API edgeskd_status edgeskd_num_labels(const edgeskd_model *model, size_t *out_count);

/* Label `index` (0-based). *out points into the handle; valid until edgeskd_close. */
EDGESKD_API edgeskd_status edgeskd_label(const edgeskd_model *model, size_t index, const char **out);

/*
 * Preprocess one 8-bit image of any size into the model's input exactly as the manifest's "preprocess" record
 * says (scale by 1/255; grayscale replicated or RGB->BT.601 luma to match the model's channels; RGBA drops alpha;
 * antialiased bilinear resize with half-pixel centres; (x - mean) / std), written NCHW into `out`.
 *   pixels:       row-major, interleaved channels (gray: 1, RGB: 3, RGBA: 4 bytes per pixel)
 *   row_stride:   bytes from one row to the next; 0 means width * channels
 *   out_floats:   length of `out`; must be at least edgeskd_input_size()
 */
EDGESKD_API edgeskd_status edgeskd_preprocess(edgeskd_model *model, const uint8_t *pixels, size_t width,
                                              size_t height, size_t channels, size_t row_stride, float *out,
                                              size_t out_floats);

/*
 * Run the model on one preprocessed input (`input_floats` must equal edgeskd_input_size()) and write
 * softmax(logits) into `probs` (probs_len >= edgeskd_num_labels()).
 */
EDGESKD_API edgeskd_status edgeskd_classify(edgeskd_model *model, const float *input, size_t input_floats,
                                            float *probs, size_t probs_len);

/* edgeskd_preprocess + edgeskd_classify using a buffer inside the handle: 8-bit pixels to probabilities. */
EDGESKD_API edgeskd_status edgeskd_classify_pixels(edgeskd_model *model, const uint8_t *pixels, size_t width,
                                                   size_t height, size_t channels, size_t row_stride, float *probs,
                                                   size_t probs_len);

#ifdef __cplusplus
}
#endif

#endif /* EDGESKD_H */
