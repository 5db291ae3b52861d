/* Reads and checks manifest.json against the bundle contract (schema_version 1, format "edgeskd.bundle"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json.h"

enum { MAX_MANIFEST_BYTES = 16 * 1024 * 1024, MAX_LABELS = 100000 };

void set_error(char *err, size_t err_size, const char *fmt, ...) {
    if (!err || err_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Reads a whole file into a malloc'd buffer. */
static edgeskd_status read_file(const char *path, char **out, size_t *out_len, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, err_size, "cannot open %s: no such file or not readable", path);
        return EDGESKD_ERR_IO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    edgeskd_status st = EDGESKD_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_MANIFEST_BYTES) {
                set_error(err, err_size, "%s is larger than %d bytes; expected a small JSON manifest", path,
                          MAX_MANIFEST_BYTES);
                st = EDGESKD_ERR_MANIFEST;
                break;
            }
            size_t new_cap = cap ? cap * 2 : 4096;
            char *grown = realloc(buf, new_cap);
            if (!grown) { set_error(err, err_size, "out of memory reading %s", path); st = EDGESKD_ERR_OUT_OF_MEMORY; break; }
            buf = grown;
            cap = new_cap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) { set_error(err, err_size, "error reading %s", path); st = EDGESKD_ERR_IO; }
            break;
        }
    }
    fclose(f);
    if (st != EDGESKD_OK) { free(buf); return st; }
    *out = buf;
    *out_len = len;
    return EDGESKD_OK;
}

/* Helpers that check one field and explain what was expected. They return 0 after writing the error. */
typedef struct ctx {
    const char *path; /* manifest path, for messages */
    char *err;
    size_t err_size;
} ctx;

static int bad(const ctx *c, const char *field, const char *expected) {
    set_error(c->err, c->err_size, "%s: field %s must be %s", c->path, field, expected);
    return 0;
}

static const json_value *need(const ctx *c, const json_value *obj, const char *key, json_type type,
                              const char *field, const char *expected) {
    const json_value *v = json_get(obj, key);
    if (!v || v->type != type) { bad(c, field, expected); return NULL; }
    return v;
}

static int get_int(const ctx *c, const json_value *v, const char *field, long long lo, long long hi, long long *out) {
    if (!v || v->type != JSON_NUMBER || v->number != floor(v->number) || v->number < (double)lo ||
        v->number > (double)hi) {
        char expected[96];
        snprintf(expected, sizeof expected, "an integer in [%lld, %lld]", lo, hi);
        return bad(c, field, expected);
    }
    *out = (long long)v->number;
    return 1;
}

static int get_str_eq(const ctx *c, const json_value *obj, const char *key, const char *field, const char *want,
                      int optional) {
    const json_value *v = json_get(obj, key);
    if (!v && optional) return 1;
    if (!v || v->type != JSON_STRING || strcmp(v->string, want) != 0) {
        char expected[96];
        snprintf(expected, sizeof expected, "the string \"%s\"", want);
        return bad(c, field, expected);
    }
    return 1;
}

/* Joins the bundle folder and a relative file name from the manifest; rejects names that leave the folder. */
static int join_file(const ctx *c, const char *dir, const json_value *files, const char *key, char **out) {
    const json_value *v = json_get(files, key);
    *out = NULL;
    if (!v || v->type == JSON_NULL) return 1;
    char field[64];
    snprintf(field, sizeof field, "model.files.%s", key);
    if (v->type != JSON_STRING || v->string[0] == '\0') return bad(c, field, "a file name or null");
    if (v->string[0] == '/' || strstr(v->string, "..") != NULL) {
        return bad(c, field, "a relative file name inside the bundle folder (no '/' prefix, no '..')");
    }
    size_t n = strlen(dir) + 1 + strlen(v->string) + 1;
    *out = malloc(n);
    if (!*out) { set_error(c->err, c->err_size, "out of memory"); return 0; }
    snprintf(*out, n, "%s/%s", dir, v->string);
    return 1;
}

static int read_floats(const ctx *c, const json_value *obj, const char *key, const char *field, size_t count,
                       int positive, float *out) {
    const json_value *v = json_get(obj, key);
    char expected[96];
    snprintf(expected, sizeof expected, "a list of %zu %snumbers (one per channel)", count, positive ? "positive " : "");
    if (!v || v->type != JSON_ARRAY || v->count != count) return bad(c, field, expected);
    for (size_t i = 0; i < count; i++) {
        const json_value *x = v->items[i];
        if (x->type != JSON_NUMBER || !isfinite(x->number) || (positive && !(x->number > 0))) {
            return bad(c, field, expected);
        }
        out[i] = (float)x->number; /* Python casts mean/std to float32 tensors before use */
    }
    return 1;
}

static int parse(const ctx *c, const char *dir, const json_value *root, manifest *m) {
    long long n;
    if (!root || root->type != JSON_OBJECT) return bad(c, "(top level)", "a JSON object");
    if (!get_str_eq(c, root, "format", "format", "edgeskd.bundle", 0)) return 0;
    if (!get_int(c, json_get(root, "schema_version"), "schema_version", 1, 1, &n)) return 0;

    const json_value *model = need(c, root, "model", JSON_OBJECT, "model", "an object");
    if (!model) return 0;
    const json_value *files = need(c, model, "files", JSON_OBJECT, "model.files", "an object");
    if (!files) return 0;
    if (!join_file(c, dir, files, "onnx", &m->onnx_path) ||
        !join_file(c, dir, files, "openvino_xml", &m->openvino_xml_path) ||
        !join_file(c, dir, files, "openvino_bin", &m->openvino_bin_path) ||
        !join_file(c, dir, files, "tensorrt", &m->tensorrt_path)) {
        return 0;
    }

    /* The primary model (a search's chosen runtime/precision, e.g. an NNCF int8 IR or an ORT QDQ model) replaces
     * the file its runtime's backend opens; the OpenVINO precision hint is the manifest's. */
    snprintf(m->ov_precision_hint, sizeof m->ov_precision_hint, "f32");
    const json_value *primary = json_get(root, "primary");
    if (primary && primary->type == JSON_OBJECT) {
        const json_value *runtime = need(c, primary, "runtime", JSON_STRING, "primary.runtime", "a string");
        if (!runtime) return 0;
        if (strcmp(runtime->string, "openvino") == 0) {
            char *xml = NULL, *bin = NULL;
            if (!join_file(c, dir, files, "primary", &xml) || !join_file(c, dir, files, "primary_bin", &bin)) {
                free(xml);
                return 0;
            }
            if (!xml || !bin) {
                free(xml);
                free(bin);
                return bad(c, "model.files.primary", "the primary OpenVINO IR (primary and primary_bin)");
            }
            free(m->openvino_xml_path);
            free(m->openvino_bin_path);
            m->openvino_xml_path = xml;
            m->openvino_bin_path = bin;
            const json_value *hint = json_get(primary, "inference_precision_hint");
            if (hint && hint->type == JSON_STRING) {
                if (strcmp(hint->string, "f32") != 0 && strcmp(hint->string, "bf16") != 0 &&
                    strcmp(hint->string, "f16") != 0) {
                    return bad(c, "primary.inference_precision_hint", "f32, bf16 or f16");
                }
                snprintf(m->ov_precision_hint, sizeof m->ov_precision_hint, "%s", hint->string);
            }
        } else if (strcmp(runtime->string, "onnxruntime") == 0) {
            char *onnx = NULL;
            if (!join_file(c, dir, files, "primary", &onnx)) return 0;
            if (!onnx) return bad(c, "model.files.primary", "the primary ONNX model");
            free(m->onnx_path);
            m->onnx_path = onnx;
        }
    }

    const json_value *input = need(c, model, "input", JSON_OBJECT, "model.input", "an object");
    if (!input) return 0;
    const json_value *name = need(c, input, "name", JSON_STRING, "model.input.name", "a string");
    if (!name || !(m->input_name = dup_string(name->string))) return 0;
    if (!get_str_eq(c, input, "dtype", "model.input.dtype", "float32", 0)) return 0;
    if (!get_str_eq(c, input, "layout", "model.input.layout", "NCHW", 1)) return 0;
    const json_value *shape = json_get(input, "shape");
    if (!shape || shape->type != JSON_ARRAY || shape->count != 4) {
        return bad(c, "model.input.shape", "[1, C, S, S] (4 integers)");
    }
    static const long long shape_hi[4] = {1, 3, 65536, 65536};
    static const long long shape_lo[4] = {1, 1, 8, 8};
    for (size_t i = 0; i < 4; i++) {
        if (!get_int(c, shape->items[i], "model.input.shape", shape_lo[i], shape_hi[i], &n)) return 0;
        m->input_shape[i] = n;
    }
    if (m->input_shape[2] != m->input_shape[3]) return bad(c, "model.input.shape", "square: [1, C, S, S]");

    const json_value *output = need(c, model, "output", JSON_OBJECT, "model.output", "an object");
    if (!output) return 0;
    name = need(c, output, "name", JSON_STRING, "model.output.name", "a string");
    if (!name || !(m->output_name = dup_string(name->string))) return 0;
    shape = json_get(output, "shape");
    if (!shape || shape->type != JSON_ARRAY || shape->count != 2) return bad(c, "model.output.shape", "[1, K]");
    if (!get_int(c, shape->items[0], "model.output.shape[0]", 1, 1, &n)) return 0;
    if (!get_int(c, shape->items[1], "model.output.shape[1]", 1, MAX_LABELS, &n)) return 0;
    m->num_classes = (size_t)n;

    const json_value *pre = need(c, root, "preprocess", JSON_OBJECT, "preprocess", "an object");
    if (!pre) return 0;
    if (!get_int(c, json_get(pre, "version"), "preprocess.version", 1, 1, &n)) return 0;
    if (!get_int(c, json_get(pre, "size"), "preprocess.size", 8, 65536, &n)) return 0;
    m->size = (size_t)n;
    if (!get_int(c, json_get(pre, "channels"), "preprocess.channels", 1, 3, &n) || n == 2) {
        return bad(c, "preprocess.channels", "1 or 3");
    }
    m->channels = (size_t)n;
    if (!get_str_eq(c, pre, "resize", "preprocess.resize", "bilinear-antialias", 0)) return 0;
    if (!get_str_eq(c, pre, "layout", "preprocess.layout", "NCHW", 1)) return 0;
    if (!read_floats(c, pre, "mean", "preprocess.mean", m->channels, 0, m->mean)) return 0;
    if (!read_floats(c, pre, "std", "preprocess.std", m->channels, 1, m->std)) return 0;
    if ((int64_t)m->size != m->input_shape[2] || (int64_t)m->channels != m->input_shape[1]) {
        return bad(c, "preprocess.size/channels", "consistent with model.input.shape [1, channels, size, size]");
    }

    const json_value *labels = need(c, root, "labels", JSON_ARRAY, "labels", "a list of strings");
    if (!labels) return 0;
    if (labels->count != m->num_classes) {
        char expected[96];
        snprintf(expected, sizeof expected, "a list of %zu strings (model.output.shape[1]); got %zu",
                 m->num_classes, labels->count);
        return bad(c, "labels", expected);
    }
    m->labels = calloc(labels->count, sizeof *m->labels);
    if (!m->labels) { set_error(c->err, c->err_size, "out of memory"); return 0; }
    m->num_labels = labels->count;
    for (size_t i = 0; i < labels->count; i++) {
        if (labels->items[i]->type != JSON_STRING) return bad(c, "labels", "a list of strings");
        if (!(m->labels[i] = dup_string(labels->items[i]->string))) {
            set_error(c->err, c->err_size, "out of memory");
            return 0;
        }
    }
    return 1;
}

edgeskd_status manifest_load(const char *bundle_dir, manifest *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(bundle_dir) + sizeof "/manifest.json";
    char *path = malloc(n);
    if (!path) { set_error(err, err_size, "out of memory"); return EDGESKD_ERR_OUT_OF_MEMORY; }
    snprintf(path, n, "%s/manifest.json", bundle_dir);

    char *text = NULL;
    size_t len = 0;
    edgeskd_status st = read_file(path, &text, &len, err, err_size);
    if (st != EDGESKD_OK) { free(path); return st; }

    char jerr[160] = "";
    json_value *root = json_parse(text, len, jerr, sizeof jerr);
    free(text);
    if (!root) {
        set_error(err, err_size, "%s is not valid JSON: %s", path, jerr);
        free(path);
        return EDGESKD_ERR_MANIFEST;
    }
    ctx c = {path, err, err_size};
    int ok = parse(&c, bundle_dir, root, out);
    json_free(root);
    free(path);
    if (!ok) {
        manifest_free(out);
        /* out-of-memory messages come from the helpers; everything else breaks the contract */
        return (err && strncmp(err, "out of memory", 13) == 0) ? EDGESKD_ERR_OUT_OF_MEMORY : EDGESKD_ERR_MANIFEST;
    }
    return EDGESKD_OK;
}

void manifest_free(manifest *m) {
    if (!m) return;
    free(m->onnx_path);
    free(m->openvino_xml_path);
    free(m->openvino_bin_path);
    free(m->tensorrt_path);
    free(m->input_name);
    free(m->output_name);
    for (size_t i = 0; i < m->num_labels; i++) free(m->labels[i]);
    free(m->labels);
    memset(m, 0, sizeof *m);
}
