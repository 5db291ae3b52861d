/* The public C ABI: argument checks, thread-local errors, per-handle locking, softmax; backends live in
 * backend_*.c, manifest reading in manifest.c, integrity checks in integrity.c. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

enum { MAX_IMAGE_SIDE = 65536 };

/* The calling thread's last message and the handle it belongs to: like errno, so a thread sharing a handle reads
 * its own failure, never one another thread wrote meanwhile. */
static _Thread_local struct {
    const edgeskd_model *owner;
    char text[EDGESKD_ERR_LEN];
} last;

/* Starts a call on `m`: clears this thread's message and returns the buffer failures write into. */
static char *begin_call(const edgeskd_model *m) {
    last.owner = m;
    last.text[0] = '\0';
    return last.text;
}
#define ERR_SIZE ((size_t)EDGESKD_ERR_LEN)

struct edgeskd_model {
    /* Serialises calls on this handle (backends' run state is not re-entrant). A pointer, so getters on a const
     * handle can take it without casting const away. */
    pthread_mutex_t *lock;
    manifest mf;
    backend_impl be;
    size_t input_floats;
    float *input;  /* edgeskd_classify_pixels' preprocessing buffer */
    float *logits; /* num_classes */
};

#define STR_(x) #x
#define STR(x) STR_(x)

const char *edgeskd_version(void) {
    return STR(EDGESKD_VERSION_MAJOR) "." STR(EDGESKD_VERSION_MINOR) "." STR(EDGESKD_VERSION_PATCH);
}

void edgeskd_options_init(edgeskd_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = (uint32_t)sizeof *opts;
    opts->backend = EDGESKD_BACKEND_ONNXRUNTIME;
    opts->num_threads = 0;
    opts->device = NULL;
    opts->flags = 0;
    opts->manifest_sha256 = NULL;
}

const char *edgeskd_status_string(edgeskd_status status) {
    switch (status) {
    case EDGESKD_OK: return "EDGESKD_OK";
    case EDGESKD_ERR_INVALID_ARGUMENT: return "EDGESKD_ERR_INVALID_ARGUMENT";
    case EDGESKD_ERR_BUFFER_TOO_SMALL: return "EDGESKD_ERR_BUFFER_TOO_SMALL";
    case EDGESKD_ERR_SIZE_MISMATCH: return "EDGESKD_ERR_SIZE_MISMATCH";
    case EDGESKD_ERR_IO: return "EDGESKD_ERR_IO";
    case EDGESKD_ERR_MANIFEST: return "EDGESKD_ERR_MANIFEST";
    case EDGESKD_ERR_UNSUPPORTED: return "EDGESKD_ERR_UNSUPPORTED";
    case EDGESKD_ERR_BACKEND: return "EDGESKD_ERR_BACKEND";
    case EDGESKD_ERR_OUT_OF_MEMORY: return "EDGESKD_ERR_OUT_OF_MEMORY";
    case EDGESKD_ERR_INTEGRITY: return "EDGESKD_ERR_INTEGRITY";
    }
    return "EDGESKD_ERR_UNKNOWN";
}

int edgeskd_backend_available(edgeskd_backend backend) {
    switch (backend) {
#ifdef EDGESKD_WITH_ONNXRUNTIME
    case EDGESKD_BACKEND_ONNXRUNTIME: return 1;
#endif
#ifdef EDGESKD_WITH_OPENVINO
    case EDGESKD_BACKEND_OPENVINO: return 1;
#endif
    default: return 0;
    }
}

static const char *backend_name(edgeskd_backend b) {
    switch (b) {
    case EDGESKD_BACKEND_ONNXRUNTIME: return "onnxruntime";
    case EDGESKD_BACKEND_OPENVINO: return "openvino";
    case EDGESKD_BACKEND_TENSORRT: return "tensorrt";
    }
    return "unknown";
}

static edgeskd_status open_backend(const manifest *mf, const edgeskd_options *opts, backend_impl *be, char *err,
                                   size_t err_size) {
    switch (opts->backend) {
#ifdef EDGESKD_WITH_ONNXRUNTIME
    case EDGESKD_BACKEND_ONNXRUNTIME: return backend_ort_open(mf, opts, be, err, err_size);
#endif
#ifdef EDGESKD_WITH_OPENVINO
    case EDGESKD_BACKEND_OPENVINO: return backend_ov_open(mf, opts, be, err, err_size);
#endif
    default: break;
    }
    if ((unsigned)opts->backend > (unsigned)EDGESKD_BACKEND_TENSORRT) {
        set_error(err, err_size, "unknown backend %d; expected EDGESKD_BACKEND_ONNXRUNTIME, _OPENVINO or _TENSORRT",
                  (int)opts->backend);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    set_error(err, err_size, "backend %s is not available in this library build",
              backend_name(opts->backend));
    return EDGESKD_ERR_UNSUPPORTED;
}

edgeskd_status edgeskd_open(const char *bundle_dir, const edgeskd_options *opts, edgeskd_model **out, char *err,
                            size_t err_size) {
    if (err && err_size > 0) err[0] = '\0';
    if (!out) {
        set_error(err, err_size, "edgeskd_open: out (the handle pointer) is NULL");
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (!bundle_dir || bundle_dir[0] == '\0') {
        set_error(err, err_size, "edgeskd_open: bundle_dir is NULL or empty; expected a bundle folder");
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    edgeskd_options defaults;
    edgeskd_options_init(&defaults);
    if (opts) {
        /* struct_size lets later versions append fields: version-1 callers pass at least the v1 layout. */
        if (opts->struct_size < offsetof(edgeskd_options, device) + sizeof opts->device ||
            opts->struct_size > sizeof(edgeskd_options)) {
            set_error(err, err_size, "edgeskd_open: opts->struct_size is %u; call edgeskd_options_init(&opts) first",
                      (unsigned)opts->struct_size);
            return EDGESKD_ERR_INVALID_ARGUMENT;
        }
        memcpy(&defaults, opts, opts->struct_size);
    }
    if (defaults.num_threads < 0) {
        set_error(err, err_size, "edgeskd_open: num_threads is %d; expected 0 (runtime default) or more",
                  (int)defaults.num_threads);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    /* Thread pools are allocated up front: an unbounded count is a memory bomb (100000 threads took 16 GB). */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    int forced = (defaults.flags & EDGESKD_OPEN_FORCE_THREADS) != 0;
    if (defaults.num_threads > EDGESKD_MAX_THREADS ||
        (!forced && (long)defaults.num_threads > cores)) {
        if (forced || defaults.num_threads > EDGESKD_MAX_THREADS) {
            set_error(err, err_size, "edgeskd_open: num_threads is %d; the limit is %d even with "
                      "EDGESKD_OPEN_FORCE_THREADS", (int)defaults.num_threads, EDGESKD_MAX_THREADS);
        } else {
            set_error(err, err_size, "edgeskd_open: num_threads is %d; the limit is this machine's %ld online cores "
                      "(set EDGESKD_OPEN_FORCE_THREADS in opts.flags, or classify --force-threads, to go above)",
                      (int)defaults.num_threads, cores);
        }
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    if (defaults.flags & ~EDGESKD_OPEN_FORCE_THREADS) {
        set_error(err, err_size, "edgeskd_open: unknown bits 0x%x in opts->flags; expected EDGESKD_OPEN_* flags",
                  (unsigned)(defaults.flags & ~EDGESKD_OPEN_FORCE_THREADS));
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }

    edgeskd_model *m = calloc(1, sizeof *m);
    if (m) m->lock = malloc(sizeof *m->lock);
    if (!m || !m->lock) {
        free(m);
        set_error(err, err_size, "out of memory");
        return EDGESKD_ERR_OUT_OF_MEMORY;
    }
    if (pthread_mutex_init(m->lock, NULL) != 0) {
        free(m->lock);
        free(m);
        set_error(err, err_size, "cannot create the handle's lock");
        return EDGESKD_ERR_OUT_OF_MEMORY;
    }
    edgeskd_status st = manifest_load(bundle_dir, defaults.manifest_sha256, &m->mf, err, err_size);
    if (st == EDGESKD_OK) {
        m->input_floats = m->mf.channels * m->mf.size * m->mf.size;
        m->input = malloc(m->input_floats * sizeof *m->input);
        m->logits = malloc(m->mf.num_classes * sizeof *m->logits);
        if (!m->input || !m->logits) {
            set_error(err, err_size, "out of memory");
            st = EDGESKD_ERR_OUT_OF_MEMORY;
        }
    }
    if (st == EDGESKD_OK) st = open_backend(&m->mf, &defaults, &m->be, err, err_size);
    if (st != EDGESKD_OK) {
        edgeskd_close(m);
        return st;
    }
    *out = m;
    return EDGESKD_OK;
}

void edgeskd_close(edgeskd_model *m) {
    if (!m) return;
    if (m->be.destroy) m->be.destroy(m->be.state);
    manifest_free(&m->mf);
    free(m->input);
    free(m->logits);
    pthread_mutex_destroy(m->lock);
    free(m->lock);
    if (last.owner == m) begin_call(NULL); /* a later handle at the same address must not inherit the message */
    free(m);
}

const char *edgeskd_last_error(const edgeskd_model *m) {
    if (!m) return "edgeskd_last_error: the handle is NULL";
    return last.owner == m ? last.text : "";
}

edgeskd_status edgeskd_input_shape(const edgeskd_model *m, int64_t shape[4]) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    if (!shape) {
        set_error(err, ERR_SIZE, "edgeskd_input_shape: shape is NULL");
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(m->lock);
    memcpy(shape, m->mf.input_shape, sizeof m->mf.input_shape);
    pthread_mutex_unlock(m->lock);
    return EDGESKD_OK;
}

edgeskd_status edgeskd_input_size(const edgeskd_model *m, size_t *out_floats) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    if (!out_floats) {
        set_error(err, ERR_SIZE, "edgeskd_input_size: out_floats is NULL");
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(m->lock);
    *out_floats = m->input_floats;
    pthread_mutex_unlock(m->lock);
    return EDGESKD_OK;
}

edgeskd_status edgeskd_num_labels(const edgeskd_model *m, size_t *out_count) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    if (!out_count) {
        set_error(err, ERR_SIZE, "edgeskd_num_labels: out_count is NULL");
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(m->lock);
    *out_count = m->mf.num_labels;
    pthread_mutex_unlock(m->lock);
    return EDGESKD_OK;
}

edgeskd_status edgeskd_label(const edgeskd_model *m, size_t index, const char **out) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    if (!out) {
        set_error(err, ERR_SIZE, "edgeskd_label: out is NULL");
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    edgeskd_status st = EDGESKD_OK;
    pthread_mutex_lock(m->lock);
    *out = NULL;
    if (index >= m->mf.num_labels) {
        set_error(err, ERR_SIZE, "edgeskd_label: index %zu out of range; the model has %zu labels", index,
                  m->mf.num_labels);
        st = EDGESKD_ERR_INVALID_ARGUMENT;
    } else {
        *out = m->mf.labels[index];
    }
    pthread_mutex_unlock(m->lock);
    return st;
}

/* Checks an image's description; on failure writes the message into `err`. */
static edgeskd_status check_pixels(char *err, const char *fn, const uint8_t *pixels, size_t width,
                                   size_t height, size_t channels, size_t *row_stride) {
    if (!pixels) {
        set_error(err, ERR_SIZE, "%s: pixels is NULL", fn);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    if (width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE) {
        set_error(err, ERR_SIZE, "%s: image size %zux%zu; expected 1..%d pixels per side", fn, width,
                  height, MAX_IMAGE_SIDE);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    if (width > (size_t)EDGESKD_MAX_IMAGE_PIXELS / height) { /* width * height without overflow on 32-bit */
        set_error(err, ERR_SIZE, "%s: image size %zux%zu is %zu pixels; the limit is %u (EDGESKD_MAX_IMAGE_PIXELS)",
                  fn, width, height, width * height, (unsigned)EDGESKD_MAX_IMAGE_PIXELS);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    if (channels != 1 && channels != 3 && channels != 4) {
        set_error(err, ERR_SIZE, "%s: channels is %zu; expected 1 (gray), 3 (RGB) or 4 (RGBA)", fn,
                  channels);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    if (*row_stride == 0) *row_stride = width * channels;
    if (*row_stride < width * channels) {
        set_error(err, ERR_SIZE, "%s: row_stride %zu is shorter than width * channels = %zu bytes", fn,
                  *row_stride, width * channels);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    return EDGESKD_OK;
}

static edgeskd_status preprocess_locked(edgeskd_model *m, char *err, const char *fn, const uint8_t *pixels, size_t width,
                                        size_t height, size_t channels, size_t row_stride, float *out) {
    edgeskd_status st = check_pixels(err, fn, pixels, width, height, channels, &row_stride);
    if (st != EDGESKD_OK) return st;
    return preprocess_pixels(&m->mf, pixels, width, height, channels, row_stride, out, err, ERR_SIZE);
}

static edgeskd_status classify_locked(edgeskd_model *m, char *err, const char *fn, float *input, float *probs,
                                      size_t probs_len) {
    const size_t k = m->mf.num_classes;
    if (!probs) {
        set_error(err, ERR_SIZE, "%s: probs is NULL", fn);
        return EDGESKD_ERR_INVALID_ARGUMENT;
    }
    if (probs_len < k) {
        set_error(err, ERR_SIZE, "%s: probs has room for %zu values; the model has %zu labels", fn,
                  probs_len, k);
        return EDGESKD_ERR_BUFFER_TOO_SMALL;
    }
    edgeskd_status st = m->be.run(m->be.state, input, m->input_floats, m->logits, k, err, ERR_SIZE);
    if (st != EDGESKD_OK) return st;
    /* softmax in double: subtract the max so exp never overflows */
    double max = m->logits[0], sum = 0.0;
    for (size_t i = 1; i < k; i++) max = m->logits[i] > max ? m->logits[i] : max;
    if (!isfinite(max)) {
        set_error(err, ERR_SIZE, "%s: the model produced a non-finite logit", fn);
        return EDGESKD_ERR_BACKEND;
    }
    for (size_t i = 0; i < k; i++) sum += exp((double)m->logits[i] - max);
    for (size_t i = 0; i < k; i++) probs[i] = (float)(exp((double)m->logits[i] - max) / sum);
    return EDGESKD_OK;
}

edgeskd_status edgeskd_preprocess(edgeskd_model *m, const uint8_t *pixels, size_t width, size_t height,
                                  size_t channels, size_t row_stride, float *out, size_t out_floats) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    pthread_mutex_lock(m->lock);
    edgeskd_status st = EDGESKD_OK;
    if (!out) {
        set_error(err, ERR_SIZE, "edgeskd_preprocess: out is NULL");
        st = EDGESKD_ERR_INVALID_ARGUMENT;
    } else if (out_floats < m->input_floats) {
        set_error(err, ERR_SIZE, "edgeskd_preprocess: out has room for %zu floats; the model input "
                  "needs %zu", out_floats, m->input_floats);
        st = EDGESKD_ERR_BUFFER_TOO_SMALL;
    } else {
        st = preprocess_locked(m, err, "edgeskd_preprocess", pixels, width, height, channels, row_stride, out);
    }
    pthread_mutex_unlock(m->lock);
    return st;
}

edgeskd_status edgeskd_classify(edgeskd_model *m, const float *input, size_t input_floats, float *probs,
                                size_t probs_len) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    pthread_mutex_lock(m->lock);
    edgeskd_status st;
    if (!input) {
        set_error(err, ERR_SIZE, "edgeskd_classify: input is NULL");
        st = EDGESKD_ERR_INVALID_ARGUMENT;
    } else if (input_floats != m->input_floats) {
        set_error(err, ERR_SIZE, "edgeskd_classify: input has %zu floats; the model takes %zu "
                  "(1x%zux%zux%zu)", input_floats, m->input_floats, m->mf.channels, m->mf.size, m->mf.size);
        st = EDGESKD_ERR_SIZE_MISMATCH;
    } else {
        /* the runtimes take a non-const pointer but only read the input */
        st = classify_locked(m, err, "edgeskd_classify", (float *)input, probs, probs_len);
    }
    pthread_mutex_unlock(m->lock);
    return st;
}

edgeskd_status edgeskd_classify_pixels(edgeskd_model *m, const uint8_t *pixels, size_t width, size_t height,
                                       size_t channels, size_t row_stride, float *probs, size_t probs_len) {
    if (!m) return EDGESKD_ERR_INVALID_ARGUMENT;
    char *err = begin_call(m);
    pthread_mutex_lock(m->lock);
    edgeskd_status st;
    if (!probs || probs_len < m->mf.num_classes) { /* check before the (costly) preprocessing */
        st = classify_locked(m, err, "edgeskd_classify_pixels", m->input, probs, probs_len);
    } else {
        st = preprocess_locked(m, err, "edgeskd_classify_pixels", pixels, width, height, channels, row_stride, m->input);
        if (st == EDGESKD_OK) st = classify_locked(m, err, "edgeskd_classify_pixels", m->input, probs, probs_len);
    }
    pthread_mutex_unlock(m->lock);
    return st;
}
