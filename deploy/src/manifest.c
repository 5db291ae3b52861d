/* Reads and checks manifest.json against the bundle contract (schema_version 1, format "edgeskd.bundle"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json.h"

enum { MAX_LABELS = 100000 };

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

/* Helpers that check one field and explain what was expected. They return 0 after writing the error. */
typedef struct ctx {
    const char *path; /* manifest path, for messages */
    char *err;
    size_t err_size;
    edgeskd_status *status; /* set when a failure is not a plain contract violation (EDGESKD_ERR_MANIFEST) */
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

/* Joins the bundle folder and a file name from model.files, and takes its size and sha256 from the top-level
 * "files" record (the runtime refuses to load a file the manifest does not vouch for). Names are plain file names:
 * no '/', so nothing can reach outside the bundle folder or through a symlinked sub-folder. */
static int join_file(const ctx *c, const char *dir, const json_value *root, const json_value *files, const char *key,
                     bundle_file *out) {
    const json_value *v = json_get(files, key);
    memset(out, 0, sizeof *out);
    if (!v || v->type == JSON_NULL) return 1;
    char field[64];
    snprintf(field, sizeof field, "model.files.%s", key);
    if (v->type != JSON_STRING || v->string[0] == '\0') return bad(c, field, "a file name or null");
    if (strchr(v->string, '/') != NULL || strcmp(v->string, ".") == 0 || strcmp(v->string, "..") == 0) {
        return bad(c, field, "a plain file name inside the bundle folder (no '/', not '..')");
    }
    const json_value *records = json_get(root, "files");
    const json_value *rec = records && records->type == JSON_OBJECT ? json_get(records, v->string) : NULL;
    const json_value *digest = rec && rec->type == JSON_OBJECT ? json_get(rec, "sha256") : NULL;
    const json_value *bytes = rec && rec->type == JSON_OBJECT ? json_get(rec, "bytes") : NULL;
    if (!digest || digest->type != JSON_STRING || strlen(digest->string) != 64 ||
        strspn(digest->string, "0123456789abcdef") != 64 || !bytes || bytes->type != JSON_NUMBER ||
        bytes->number < 0 || bytes->number != floor(bytes->number) || bytes->number > 9.0e15) {
        set_error(c->err, c->err_size, "%s: files.\"%s\" must be {\"sha256\": 64 hex digits, \"bytes\": size}; "
                  "the runtime loads no file the manifest does not vouch for", c->path, v->string);
        *c->status = EDGESKD_ERR_INTEGRITY;
        return 0;
    }
    memcpy(out->sha256, digest->string, 65);
    out->bytes = (uint64_t)bytes->number;
    size_t n = strlen(dir) + 1 + strlen(v->string) + 1;
    out->path = malloc(n);
    if (!out->path) { set_error(c->err, c->err_size, "out of memory"); return 0; }
    snprintf(out->path, n, "%s/%s", dir, v->string);
    out->name = out->path + strlen(dir) + 1;
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
    if (!join_file(c, dir, root, files, "onnx", &m->onnx) ||
        !join_file(c, dir, root, files, "openvino_xml", &m->openvino_xml) ||
        !join_file(c, dir, root, files, "openvino_bin", &m->openvino_bin) ||
        !join_file(c, dir, root, files, "tensorrt", &m->tensorrt)) {
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
            bundle_file xml = {0}, bin = {0};
            if (!join_file(c, dir, root, files, "primary", &xml) ||
                !join_file(c, dir, root, files, "primary_bin", &bin)) {
                free(xml.path);
                return 0;
            }
            if (!xml.path || !bin.path) {
                free(xml.path);
                free(bin.path);
                return bad(c, "model.files.primary", "the primary OpenVINO IR (primary and primary_bin)");
            }
            free(m->openvino_xml.path);
            free(m->openvino_bin.path);
            m->openvino_xml = xml;
            m->openvino_bin = bin;
            const json_value *hint = json_get(primary, "inference_precision_hint");
            if (hint && hint->type == JSON_STRING) {
                if (strcmp(hint->string, "f32") != 0 && strcmp(hint->string, "bf16") != 0 &&
                    strcmp(hint->string, "f16") != 0) {
                    return bad(c, "primary.inference_precision_hint", "f32, bf16 or f16");
                }
                snprintf(m->ov_precision_hint, sizeof m->ov_precision_hint, "%s", hint->string);
            }
        } else if (strcmp(runtime->string, "onnxruntime") == 0) {
            bundle_file onnx = {0};
            if (!join_file(c, dir, root, files, "primary", &onnx)) return 0;
            if (!onnx.path) return bad(c, "model.files.primary", "the primary ONNX model");
            free(m->onnx.path);
            m->onnx = onnx;
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
    static const long long shape_hi[4] = {1, 3, EDGESKD_MAX_INPUT_SIDE, EDGESKD_MAX_INPUT_SIDE};
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
    if (!get_int(c, json_get(pre, "size"), "preprocess.size", 8, EDGESKD_MAX_INPUT_SIDE, &n)) return 0;
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

edgeskd_status manifest_load(const char *bundle_dir, const char *pinned_sha256, manifest *out, char *err,
                             size_t err_size) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(bundle_dir) + sizeof "/manifest.json";
    char *path = malloc(n);
    if (!path) { set_error(err, err_size, "out of memory"); return EDGESKD_ERR_OUT_OF_MEMORY; }
    snprintf(path, n, "%s/manifest.json", bundle_dir);

    uint8_t *text = NULL;
    size_t len = 0;
    edgeskd_status st = read_regular_file(path, MAX_MANIFEST_BYTES, EDGESKD_ERR_MANIFEST, &text, &len, err, err_size);
    if (st == EDGESKD_ERR_MANIFEST) {
        set_error(err, err_size, "%s is larger than %d bytes (16 MB); expected a small JSON manifest", path,
                  MAX_MANIFEST_BYTES);
    }
    if (st == EDGESKD_OK) st = check_manifest_digest(bundle_dir, text, len, pinned_sha256, err, err_size);
    if (st != EDGESKD_OK) { free(text); free(path); return st; }

    char jerr[160] = "";
    json_value *root = json_parse((const char *)text, len, jerr, sizeof jerr);
    free(text);
    if (!root) {
        set_error(err, err_size, "%s is not valid JSON: %s", path, jerr);
        free(path);
        return EDGESKD_ERR_MANIFEST;
    }
    edgeskd_status status = EDGESKD_ERR_MANIFEST;
    ctx c = {path, err, err_size, &status};
    int ok = parse(&c, bundle_dir, root, out);
    json_free(root);
    free(path);
    if (!ok) {
        manifest_free(out);
        /* out-of-memory messages come from the helpers; everything else breaks the contract */
        return (err && strncmp(err, "out of memory", 13) == 0) ? EDGESKD_ERR_OUT_OF_MEMORY : status;
    }
    return EDGESKD_OK;
}

void manifest_free(manifest *m) {
    if (!m) return;
    free(m->onnx.path);
    free(m->openvino_xml.path);
    free(m->openvino_bin.path);
    free(m->tensorrt.path);
    free(m->input_name);
    free(m->output_name);
    for (size_t i = 0; i < m->num_labels; i++) free(m->labels[i]);
    free(m->labels);
    memset(m, 0, sizeof *m);
}
