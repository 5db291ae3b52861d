/*
 * C-only tests of the edgeskd ABI: error paths (NULLs, short buffers, wrong sizes, missing files, broken manifests),
 * the JSON reader, and, when EDGESKD_TEST_BUNDLE names a real bundle folder, a happy path per built backend plus
 * manifest/model mismatches. Run under AddressSanitizer (test_errors_asan) or valgrind for memory checks.
 * Ends with the line "N passed, N failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgeskd.h"
#include "json.h"
#include "sha256.h"

static int passed, failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) passed++;                                                              \
        else { failed++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

/* The call must fail with `want` and leave a non-empty message mentioning `needle` (when not NULL). */
#define CHECK_STATUS(call, want, model, needle)                                                           \
    do {                                                                                                  \
        edgeskd_status st_ = (call);                                                                      \
        const char *msg_ = edgeskd_last_error(model);                                                     \
        if (st_ == (want) && msg_[0] != '\0' && contains(msg_, (needle))) passed++;          \
        else {                                                                                            \
            failed++;                                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s -> %s (want %s), message \"%s\"\n", __FILE__, __LINE__, #call, \
                    edgeskd_status_string(st_), edgeskd_status_string(want), msg_);                        \
        }                                                                                                 \
    } while (0)

static char tmpdir[256];

static int contains(const char *text, const char *needle) { return !needle || strstr(text, needle) != NULL; }

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fputs(text, f);
    fclose(f);
}

/* The "files" record for dir's model.onnx / model.xml / model.bin: their real size and sha256, or a zero record
 * for a file that is absent (so opening it fails as a missing file, not as a missing record). */
static void files_record(const char *dir, char *out, size_t n) {
    static const char *names[] = {"model.onnx", "model.xml", "model.bin"};
    size_t used = (size_t)snprintf(out, n, "{");
    for (size_t i = 0; i < 3; i++) {
        char path[512], hex[65];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        long size = 0;
        FILE *f = fopen(path, "rb");
        memset(hex, '0', 64);
        hex[64] = '\0';
        if (f) {
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            fseek(f, 0, SEEK_SET);
            uint8_t *buf = malloc((size_t)size + 1);
            if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) { perror(path); exit(2); }
            sha256_hex(buf, (size_t)size, SHA256_AUTO, hex);
            free(buf);
            fclose(f);
        }
        used += (size_t)snprintf(out + used, n - used, "%s\"%s\": {\"sha256\": \"%s\", \"bytes\": %ld}",
                                 i ? ", " : "", names[i], hex, size);
    }
    snprintf(out + used, n - used, "}");
}

/* Writes dir/manifest.sha256 for the manifest.json now in dir (the exporter's sha256sum-format line). */
static void write_digest(const char *dir) {
    char path[512], hex[65], line[128];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    sha256_hex(text, n, SHA256_AUTO, hex);
    snprintf(line, sizeof line, "%s  manifest.json\n", hex);
    write_text(dir, "manifest.sha256", line);
}

/* A valid manifest for a model with C channels, S x S input and K labels. */
static void base_manifest(char *out, size_t n, int c, int s, int k) {
    const char *labels = k == 2 ? "[\"NORMAL\", \"PNEUMONIA\"]" : "[\"a\", \"b\", \"c\", \"d\"]";
    const char *mean = c == 3 ? "[0.5, 0.5, 0.5]" : "[0.5]";
    char files[1024];
    files_record(tmpdir, files, sizeof files);
    snprintf(out, n,
             "{\"schema_version\": 1, \"format\": \"edgeskd.bundle\", \"model\": {\"files\": {\"onnx\": \"model.onnx\", "
             "\"openvino_xml\": \"model.xml\", \"openvino_bin\": \"model.bin\", \"tensorrt\": null}, \"input\": "
             "{\"name\": \"input\", \"shape\": [1, %d, %d, %d], \"dtype\": \"float32\", \"layout\": \"NCHW\"}, "
             "\"output\": {\"name\": \"logits\", \"shape\": [1, %d]}}, \"preprocess\": {\"size\": %d, \"channels\": %d, "
             "\"mean\": %s, \"std\": %s, \"resize\": \"bilinear-antialias\", \"layout\": \"NCHW\", \"version\": 1}, "
             "\"labels\": %s, \"note\": \"caf\\u00e9 \\ud83d\\ude00\", \"files\": %s}",
             c, s, s, k, s, c, mean, mean, labels, files);
}

/* Writes `base` with the first `from` replaced by `to` as dir/manifest.json. */
static void write_variant(const char *dir, const char *base, const char *from, const char *to) {
    char text[4096];
    const char *at = from ? strstr(base, from) : NULL;
    if (from && !at) { fprintf(stderr, "test bug: '%s' not in the base manifest\n", from); exit(2); }
    if (!at) snprintf(text, sizeof text, "%s", base);
    else snprintf(text, sizeof text, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    write_text(dir, "manifest.json", text);
    write_digest(dir);
}

static edgeskd_status open_status(const char *dir, edgeskd_backend backend, char *err, size_t n) {
    edgeskd_options o;
    edgeskd_options_init(&o);
    o.backend = backend;
    edgeskd_model *m = (edgeskd_model *)0x1; /* must come back NULL on failure */
    edgeskd_status st = edgeskd_open(dir, &o, &m, err, n);
    if (st == EDGESKD_OK) edgeskd_close(m);
    else CHECK(m == NULL);
    return st;
}

#define CHECK_OPEN(dir, backend, want, needle)                                                                    \
    do {                                                                                                          \
        char e_[1024] = "";                                                                                       \
        edgeskd_status st_ = open_status(dir, backend, e_, sizeof e_);                                            \
        if (st_ == (want) && ((want) == EDGESKD_OK || (e_[0] && contains(e_, (needle))))) passed++;  \
        else {                                                                                                    \
            failed++;                                                                                             \
            fprintf(stderr, "FAIL %s:%d: open -> %s (want %s): \"%s\"\n", __FILE__, __LINE__,                     \
                    edgeskd_status_string(st_), edgeskd_status_string(want), e_);                                 \
        }                                                                                                         \
    } while (0)

static void test_json(void) {
    char err[128];
    const char *doc = "{\"a\": [1, -2.5e2, true, null, \"x\\n\\u00e9\"], \"b\": {}}";
    json_value *v = json_parse(doc, strlen(doc), err, sizeof err);
    CHECK(v != NULL);
    if (v) {
        const json_value *a = json_get(v, "a");
        CHECK(a && a->type == JSON_ARRAY && a->count == 5);
        if (a && a->count == 5) {
            CHECK(a->items[1]->type == JSON_NUMBER && a->items[1]->number == -250.0);
            CHECK(a->items[2]->type == JSON_BOOL && a->items[2]->boolean == 1);
            CHECK(a->items[3]->type == JSON_NULL);
            CHECK(a->items[4]->type == JSON_STRING && strcmp(a->items[4]->string, "x\n\xc3\xa9") == 0);
        }
        CHECK(json_get(v, "b") && json_get(v, "b")->type == JSON_OBJECT);
        CHECK(json_get(v, "missing") == NULL);
        json_free(v);
    }
    static const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "\"abc", "01", "1.", "-", "tru",
                                "[1] x", "\"\\q\"", "\"\\ud800\"", "{\"a\":\"\x01\"}", "\"\\u0000\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        json_value *b = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
        CHECK(b == NULL && strstr(err, "at byte") != NULL);
        json_free(b);
    }
    char deep[300];
    memset(deep, '[', sizeof deep);
    CHECK(json_parse(deep, sizeof deep, err, sizeof err) == NULL && strstr(err, "deep"));
    CHECK(json_parse(NULL, 0, err, sizeof err) == NULL);
}

static edgeskd_status open_opts(const char *dir, const edgeskd_options *o, char *err, size_t n) {
    edgeskd_model *m = NULL;
    edgeskd_status st = edgeskd_open(dir, o, &m, err, n);
    edgeskd_close(m);
    return st;
}

#define CHECK_OPEN_OPTS(dir, opts, want, needle)                                                            \
    do {                                                                                                    \
        char e_[1024] = "";                                                                                 \
        edgeskd_status st_ = open_opts(dir, opts, e_, sizeof e_);                                           \
        if (st_ == (want) && ((want) == EDGESKD_OK || (e_[0] && contains(e_, (needle))))) passed++;        \
        else {                                                                                              \
            failed++;                                                                                       \
            fprintf(stderr, "FAIL %s:%d: open -> %s (want %s): \"%s\"\n", __FILE__, __LINE__,                 \
                    edgeskd_status_string(st_), edgeskd_status_string(want), e_);                           \
        }                                                                                                   \
    } while (0)

static void append_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "ab");
    if (!f) { perror(path); exit(2); }
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* Manifest integrity, file records and option bounds: all decided before any model file is needed. */
static void test_integrity_without_model(const char *base) {
    const edgeskd_backend ort = EDGESKD_BACKEND_ONNXRUNTIME;
    /* no manifest.sha256: an old bundle, refused with how to fix it */
    write_variant(tmpdir, base, NULL, NULL);
    remove_file(tmpdir, "manifest.sha256");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_INTEGRITY, "re-export");
    /* the manifest changed after its digest was written (one byte: a swapped label would look the same) */
    write_variant(tmpdir, base, NULL, NULL);
    append_text(tmpdir, "manifest.json", " ");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_INTEGRITY, "manifest.sha256 says");
    write_variant(tmpdir, base, "[\"NORMAL\", \"PNEUMONIA\"]", "[\"NORMAL\", \"PNEUMONIA\"]");
    write_text(tmpdir, "manifest.sha256", "not a digest\n");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_INTEGRITY, "64 lower-case hex");
    /* manifest.json as a symlink (to a valid manifest elsewhere) */
    char path[600], other[600];
    snprintf(other, sizeof other, "%s/elsewhere.json", tmpdir);
    snprintf(path, sizeof path, "%s/manifest.json", tmpdir);
    write_variant(tmpdir, base, NULL, NULL);
    rename(path, other);
    if (symlink(other, path) != 0) perror("symlink");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_INTEGRITY, "symbolic link");
    unlink(path);
    unlink(other);
    /* a model file the "files" record does not vouch for; a file name with a folder in it */
    write_variant(tmpdir, base, "\"files\": {\"model.onnx\"", "\"files_moved\": {\"model.onnx\"");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_INTEGRITY, "files.\"model.onnx\"");
    write_variant(tmpdir, base, "\"model.onnx\", ", "\"sub/model.onnx\", ");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_MANIFEST, "model.files.onnx");
    /* input side bound */
    write_variant(tmpdir, base, "[1, 3, 64, 64]", "[1, 3, 4097, 4097]");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_MANIFEST, "4096");
    /* a manifest over 16 MB is refused before it is read */
    write_variant(tmpdir, base, NULL, NULL);
    snprintf(path, sizeof path, "%s/manifest.json", tmpdir);
    if (truncate(path, 16 * 1024 * 1024 + 1) != 0) perror("truncate");
    CHECK_OPEN(tmpdir, ort, EDGESKD_ERR_MANIFEST, "16 MB");

    /* pinned digest */
    write_variant(tmpdir, base, NULL, NULL);
    edgeskd_options o;
    edgeskd_options_init(&o);
    o.manifest_sha256 = "xyz";
    CHECK_OPEN_OPTS(tmpdir, &o, EDGESKD_ERR_INVALID_ARGUMENT, "manifest_sha256");
    o.manifest_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    CHECK_OPEN_OPTS(tmpdir, &o, EDGESKD_ERR_INTEGRITY, "pinned");
    /* thread bounds, checked before anything is read */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    edgeskd_options_init(&o);
    o.num_threads = (int32_t)cores + 1;
    CHECK_OPEN_OPTS(tmpdir, &o, EDGESKD_ERR_INVALID_ARGUMENT, "online cores");
    o.num_threads = 100000;
    o.flags = EDGESKD_OPEN_FORCE_THREADS;
    CHECK_OPEN_OPTS(tmpdir, &o, EDGESKD_ERR_INVALID_ARGUMENT, "1024");
    o.num_threads = 0;
    o.flags = 0x80;
    CHECK_OPEN_OPTS(tmpdir, &o, EDGESKD_ERR_INVALID_ARGUMENT, "flags");
    /* a version-0.1 caller (smaller struct) still opens: the new fields take their defaults */
    edgeskd_options_init(&o);
    o.struct_size = (uint32_t)(offsetof(edgeskd_options, device) + sizeof o.device);
    CHECK_OPEN_OPTS(tmpdir, &o, EDGESKD_ERR_IO, "model.onnx");
    remove_file(tmpdir, "manifest.sha256");
}

static void test_without_model(void) {
    char err[512];
    edgeskd_model *m = NULL;
    CHECK(edgeskd_open("x", NULL, NULL, err, sizeof err) == EDGESKD_ERR_INVALID_ARGUMENT && err[0]);
    CHECK(edgeskd_open(NULL, NULL, &m, err, sizeof err) == EDGESKD_ERR_INVALID_ARGUMENT && m == NULL);
    CHECK(edgeskd_open("", NULL, &m, NULL, 0) == EDGESKD_ERR_INVALID_ARGUMENT); /* no message buffer: still safe */
    CHECK(edgeskd_open("/nonexistent/bundle", NULL, &m, err, sizeof err) == EDGESKD_ERR_IO &&
          strstr(err, "/nonexistent/bundle/manifest.json") != NULL);
    char tiny[8];
    CHECK(edgeskd_open("/nonexistent/bundle", NULL, &m, tiny, sizeof tiny) == EDGESKD_ERR_IO &&
          strlen(tiny) == sizeof tiny - 1); /* truncated, terminated */

    edgeskd_options o;
    edgeskd_options_init(&o);
    CHECK(o.struct_size == sizeof o && o.backend == EDGESKD_BACKEND_ONNXRUNTIME && o.num_threads == 0);
    o.num_threads = -1;
    CHECK(edgeskd_open(tmpdir, &o, &m, err, sizeof err) == EDGESKD_ERR_INVALID_ARGUMENT && strstr(err, "num_threads"));
    edgeskd_options_init(&o);
    o.struct_size = 3;
    CHECK(edgeskd_open(tmpdir, &o, &m, err, sizeof err) == EDGESKD_ERR_INVALID_ARGUMENT && strstr(err, "struct_size"));

    /* NULL handles everywhere */
    int64_t shape[4];
    size_t n;
    const char *label;
    float buf[4];
    uint8_t px[4] = {0};
    CHECK(edgeskd_input_shape(NULL, shape) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_input_size(NULL, &n) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_num_labels(NULL, &n) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_label(NULL, 0, &label) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_preprocess(NULL, px, 2, 2, 1, 0, buf, 4) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_classify(NULL, buf, 4, buf, 4) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_classify_pixels(NULL, px, 2, 2, 1, 0, buf, 4) == EDGESKD_ERR_INVALID_ARGUMENT);
    CHECK(edgeskd_last_error(NULL) != NULL);
    edgeskd_close(NULL);
    CHECK(strcmp(edgeskd_status_string(EDGESKD_ERR_IO), "EDGESKD_ERR_IO") == 0);
    CHECK(strcmp(edgeskd_status_string((edgeskd_status)99), "EDGESKD_ERR_UNKNOWN") == 0);
    CHECK(strcmp(edgeskd_version(), "0.2.0") == 0);
    CHECK(strcmp(edgeskd_status_string(EDGESKD_ERR_INTEGRITY), "EDGESKD_ERR_INTEGRITY") == 0);
    CHECK(edgeskd_backend_available((edgeskd_backend)42) == 0);

    /* Broken manifests: each must be refused with a message naming the field. */
    char base[4096];
    base_manifest(base, sizeof base, 3, 64, 2);
    struct { const char *from, *to, *needle; edgeskd_status want; } cases[] = {
        {"\"edgeskd.bundle\"", "\"other\"", "format", EDGESKD_ERR_MANIFEST},
        {"\"schema_version\": 1", "\"schema_version\": 2", "schema_version", EDGESKD_ERR_MANIFEST},
        {"[\"NORMAL\", \"PNEUMONIA\"]", "[\"NORMAL\"]", "labels", EDGESKD_ERR_MANIFEST},
        {"[\"NORMAL\", \"PNEUMONIA\"]", "[\"NORMAL\", 7]", "labels", EDGESKD_ERR_MANIFEST},
        {"\"size\": 64", "\"size\": 32", "preprocess.size", EDGESKD_ERR_MANIFEST},
        {"\"channels\": 3", "\"channels\": 2", "preprocess.channels", EDGESKD_ERR_MANIFEST},
        {"\"std\": [0.5, 0.5, 0.5]", "\"std\": [0.5, 0, 0.5]", "preprocess.std", EDGESKD_ERR_MANIFEST},
        {"\"mean\": [0.5, 0.5, 0.5]", "\"mean\": [0.5, 0.5]", "preprocess.mean", EDGESKD_ERR_MANIFEST},
        {"bilinear-antialias", "nearest", "preprocess.resize", EDGESKD_ERR_MANIFEST},
        {"\"float32\"", "\"uint8\"", "model.input.dtype", EDGESKD_ERR_MANIFEST},
        {"[1, 3, 64, 64]", "[1, 3, 64]", "model.input.shape", EDGESKD_ERR_MANIFEST},
        {"[1, 3, 64, 64]", "[1, 3, 64.5, 64]", "model.input.shape", EDGESKD_ERR_MANIFEST},
        {"\"model.onnx\"", "\"../model.onnx\"", "model.files.onnx", EDGESKD_ERR_MANIFEST},
        {"\"model.onnx\"", "\"/etc/passwd\"", "model.files.onnx", EDGESKD_ERR_MANIFEST},
        {"\"model\": {", "\"modelx\": {", "model", EDGESKD_ERR_MANIFEST},
        {"\"labels\"", "\"labels\": 1, \"x\"", "labels", EDGESKD_ERR_MANIFEST},
        {"\"version\": 1}", "\"version\": 1", "not valid JSON", EDGESKD_ERR_MANIFEST},
        /* valid manifest, but the model file is not there */
        {NULL, NULL, "model.onnx", EDGESKD_ERR_IO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_variant(tmpdir, base, cases[i].from, cases[i].to);
        CHECK_OPEN(tmpdir, EDGESKD_BACKEND_ONNXRUNTIME, cases[i].want, cases[i].needle);
    }
    write_variant(tmpdir, base, NULL, NULL);
    if (edgeskd_backend_available(EDGESKD_BACKEND_OPENVINO)) {
        CHECK_OPEN(tmpdir, EDGESKD_BACKEND_OPENVINO, EDGESKD_ERR_IO, "model.xml");
    } else {
        CHECK_OPEN(tmpdir, EDGESKD_BACKEND_OPENVINO, EDGESKD_ERR_UNSUPPORTED, "openvino");
    }
    CHECK_OPEN(tmpdir, EDGESKD_BACKEND_TENSORRT, EDGESKD_ERR_UNSUPPORTED, "tensorrt");
    CHECK_OPEN(tmpdir, (edgeskd_backend)7, EDGESKD_ERR_INVALID_ARGUMENT, "unknown backend");
    write_text(tmpdir, "manifest.json", "");
    write_digest(tmpdir);
    CHECK_OPEN(tmpdir, EDGESKD_BACKEND_ONNXRUNTIME, EDGESKD_ERR_MANIFEST, "not valid JSON");
    test_integrity_without_model(base);
}

/* A deterministic test image: gradients plus a bright square. */
static uint8_t *make_image(size_t w, size_t h, size_t c, size_t stride) {
    uint8_t *px = calloc(stride * h, 1);
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++)
            for (size_t k = 0; k < c; k++) {
                int inside = x > w / 3 && x < w / 2 && y > h / 4 && y < h / 2;
                px[y * stride + x * c + k] = (uint8_t)(inside ? 250 : (x * 255 / w + y * 64 / h + k * 40) % 256);
            }
    return px;
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) { perror(from); exit(2); }
    char buf[1 << 15];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

/* Each model file the backend reads: one flipped byte, a changed size, a symlink; each refused naming the file. */
static void test_tampered_files(const char *dir, const char *base, edgeskd_backend backend, const char *bundle) {
    const char *files[2] = {"model.onnx", NULL};
    if (backend == EDGESKD_BACKEND_OPENVINO) { files[0] = "model.xml"; files[1] = "model.bin"; }
    for (int i = 0; i < 2 && files[i]; i++) {
        char path[600], original[600];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(original, sizeof original, "%s/%s", bundle, files[i]);
        FILE *f = fopen(path, "r+b");
        if (!f) { perror(path); exit(2); }
        fseek(f, -3, SEEK_END); /* near the end: weights, not the header */
        int c = fgetc(f);
        fseek(f, -3, SEEK_END);
        fputc(c ^ 0x01, f);
        fclose(f);
        CHECK_OPEN(dir, backend, EDGESKD_ERR_INTEGRITY, files[i]);
        CHECK_OPEN(dir, backend, EDGESKD_ERR_INTEGRITY, "sha256");
        append_text(dir, files[i], "x");
        CHECK_OPEN(dir, backend, EDGESKD_ERR_INTEGRITY, "bytes");
        unlink(path);
        if (symlink(original, path) != 0) perror("symlink"); /* same bytes, but a link: refused all the same */
        CHECK_OPEN(dir, backend, EDGESKD_ERR_INTEGRITY, "symbolic link");
        unlink(path);
        copy_file(original, path);
        CHECK_OPEN(dir, backend, EDGESKD_OK, NULL);
    }
    /* pinned digest: the right one opens; thread bound: forcing lets one more than the cores through */
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    FILE *f = fopen(mpath, "rb");
    static char text[1 << 16];
    size_t n = f ? fread(text, 1, sizeof text, f) : 0;
    if (f) fclose(f);
    char hex[65];
    sha256_hex(text, n, SHA256_AUTO, hex);
    edgeskd_options o;
    edgeskd_options_init(&o);
    o.backend = backend;
    o.manifest_sha256 = hex;
    CHECK_OPEN_OPTS(dir, &o, EDGESKD_OK, NULL);
    o.manifest_sha256 = NULL;
    o.num_threads = (int32_t)sysconf(_SC_NPROCESSORS_ONLN) + 1;
    o.flags = EDGESKD_OPEN_FORCE_THREADS;
    CHECK_OPEN_OPTS(dir, &o, EDGESKD_OK, NULL);
    (void)base;
}

static void test_with_bundle(const char *bundle, edgeskd_backend backend) {
    edgeskd_options o;
    edgeskd_options_init(&o);
    o.backend = backend;
    o.num_threads = 1;
    edgeskd_model *m = NULL;
    char err[1024];
    edgeskd_status st = edgeskd_open(bundle, &o, &m, err, sizeof err);
    CHECK(st == EDGESKD_OK);
    if (st != EDGESKD_OK) { fprintf(stderr, "open %s: %s\n", bundle, err); return; }

    int64_t shape[4];
    size_t n_in = 0, k = 0;
    CHECK(edgeskd_input_shape(m, shape) == EDGESKD_OK && shape[0] == 1 && shape[2] == shape[3]);
    CHECK(edgeskd_input_size(m, &n_in) == EDGESKD_OK && n_in == (size_t)(shape[1] * shape[2] * shape[3]));
    CHECK(edgeskd_num_labels(m, &k) == EDGESKD_OK && k >= 2 && k <= 4);
    const char *label = NULL;
    CHECK(edgeskd_label(m, 0, &label) == EDGESKD_OK && label && label[0]);
    CHECK_STATUS(edgeskd_label(m, k, &label), EDGESKD_ERR_INVALID_ARGUMENT, m, "out of range");
    CHECK(label == NULL);
    CHECK_STATUS(edgeskd_label(m, 0, NULL), EDGESKD_ERR_INVALID_ARGUMENT, m, NULL);
    CHECK_STATUS(edgeskd_input_shape(m, NULL), EDGESKD_ERR_INVALID_ARGUMENT, m, NULL);
    CHECK_STATUS(edgeskd_input_size(m, NULL), EDGESKD_ERR_INVALID_ARGUMENT, m, NULL);
    CHECK_STATUS(edgeskd_num_labels(m, NULL), EDGESKD_ERR_INVALID_ARGUMENT, m, NULL);

    float *input = malloc(n_in * sizeof *input);
    float *again = malloc(n_in * sizeof *again);
    float probs[8], probs2[8];
    const size_t w = 97, h = 71, stride = 4 * 97 + 5;
    uint8_t *gray = make_image(w, h, 1, w), *rgb = make_image(w, h, 3, 3 * w), *rgba = make_image(w, h, 4, stride);

    /* happy paths */
    CHECK(edgeskd_preprocess(m, rgb, w, h, 3, 0, input, n_in) == EDGESKD_OK);
    CHECK(edgeskd_last_error(m)[0] == '\0');
    CHECK(edgeskd_classify(m, input, n_in, probs, k) == EDGESKD_OK);
    double sum = 0;
    for (size_t i = 0; i < k; i++) { sum += probs[i]; CHECK(probs[i] >= 0 && probs[i] <= 1); }
    CHECK(fabs(sum - 1.0) < 1e-5);
    CHECK(edgeskd_classify_pixels(m, rgb, w, h, 3, 0, probs2, k) == EDGESKD_OK);
    CHECK(memcmp(probs, probs2, k * sizeof *probs) == 0);
    /* RGBA with padded rows = the same RGB image */
    uint8_t *rgba_from_rgb = calloc(stride * h, 1);
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            memcpy(rgba_from_rgb + y * stride + 4 * x, rgb + 3 * (y * w + x), 3);
            rgba_from_rgb[y * stride + 4 * x + 3] = 17;
        }
    CHECK(edgeskd_preprocess(m, rgba_from_rgb, w, h, 4, stride, again, n_in) == EDGESKD_OK);
    CHECK(memcmp(input, again, n_in * sizeof *input) == 0);
    CHECK(edgeskd_classify_pixels(m, gray, w, h, 1, 0, probs, k) == EDGESKD_OK);
    CHECK(edgeskd_classify_pixels(m, rgba, w, h, 4, stride, probs, k) == EDGESKD_OK);
    CHECK(edgeskd_classify_pixels(m, gray, 1, 1, 1, 0, probs, k) == EDGESKD_OK); /* 1x1 upscaled */

    /* error paths */
    CHECK_STATUS(edgeskd_preprocess(m, NULL, w, h, 3, 0, input, n_in), EDGESKD_ERR_INVALID_ARGUMENT, m, "pixels");
    CHECK_STATUS(edgeskd_preprocess(m, rgb, 0, h, 3, 0, input, n_in), EDGESKD_ERR_INVALID_ARGUMENT, m, "size");
    CHECK_STATUS(edgeskd_preprocess(m, rgb, w, 70000, 3, 0, input, n_in), EDGESKD_ERR_INVALID_ARGUMENT, m, "size");
    CHECK_STATUS(edgeskd_preprocess(m, rgb, w, h, 2, 0, input, n_in), EDGESKD_ERR_INVALID_ARGUMENT, m, "channels");
    CHECK_STATUS(edgeskd_preprocess(m, rgb, w, h, 3, 3 * w - 1, input, n_in), EDGESKD_ERR_INVALID_ARGUMENT, m,
                 "row_stride");
    CHECK_STATUS(edgeskd_preprocess(m, rgb, w, h, 3, 0, NULL, n_in), EDGESKD_ERR_INVALID_ARGUMENT, m, "out");
    CHECK_STATUS(edgeskd_preprocess(m, rgb, w, h, 3, 0, input, n_in - 1), EDGESKD_ERR_BUFFER_TOO_SMALL, m, "room");
    CHECK_STATUS(edgeskd_classify(m, NULL, n_in, probs, k), EDGESKD_ERR_INVALID_ARGUMENT, m, "input");
    CHECK_STATUS(edgeskd_classify(m, input, n_in - 1, probs, k), EDGESKD_ERR_SIZE_MISMATCH, m, "floats");
    CHECK_STATUS(edgeskd_classify(m, input, n_in + 1, probs, k), EDGESKD_ERR_SIZE_MISMATCH, m, "floats");
    CHECK_STATUS(edgeskd_classify(m, input, n_in, NULL, k), EDGESKD_ERR_INVALID_ARGUMENT, m, "probs");
    CHECK_STATUS(edgeskd_classify(m, input, n_in, probs, k - 1), EDGESKD_ERR_BUFFER_TOO_SMALL, m, "labels");
    CHECK_STATUS(edgeskd_classify_pixels(m, rgb, w, h, 3, 0, probs, 1), EDGESKD_ERR_BUFFER_TOO_SMALL, m, "labels");
    CHECK_STATUS(edgeskd_classify_pixels(m, NULL, w, h, 3, 0, probs, k), EDGESKD_ERR_INVALID_ARGUMENT, m, "pixels");
    /* 8193 x 8193 is over EDGESKD_MAX_IMAGE_PIXELS: refused from the description, the pixels are never read */
    CHECK_STATUS(edgeskd_classify_pixels(m, gray, 8193, 8193, 1, 0, probs, k), EDGESKD_ERR_INVALID_ARGUMENT, m,
                 "limit");
    /* a success clears the previous message */
    CHECK(edgeskd_classify(m, input, n_in, probs, k) == EDGESKD_OK && edgeskd_last_error(m)[0] == '\0');

    /* manifest and model disagree: same model files, edited manifest */
    char base[4096], path[1024], link_to[1024];
    base_manifest(base, sizeof base, (int)shape[1], (int)shape[2], (int)k);
    static const char *names[] = {"model.onnx", "model.xml", "model.bin"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        snprintf(link_to, sizeof link_to, "%s/%s", bundle, names[i]);
        copy_file(link_to, path);
    }
    base_manifest(base, sizeof base, (int)shape[1], (int)shape[2], (int)k); /* now with the copies' digests */
    write_variant(tmpdir, base, NULL, NULL);
    CHECK_OPEN(tmpdir, backend, EDGESKD_OK, NULL);
    test_tampered_files(tmpdir, base, backend, bundle);
    write_variant(tmpdir, base, NULL, NULL);
    write_variant(tmpdir, base, "\"name\": \"input\"", "\"name\": \"image\"");
    CHECK_OPEN(tmpdir, backend, EDGESKD_ERR_MANIFEST, "\"image\"");
    write_variant(tmpdir, base, "\"name\": \"logits\"", "\"name\": \"scores\"");
    CHECK_OPEN(tmpdir, backend, EDGESKD_ERR_MANIFEST, "\"scores\"");
    char wrong_k[4096];
    base_manifest(wrong_k, sizeof wrong_k, (int)shape[1], (int)shape[2], k == 2 ? 4 : 2);
    write_variant(tmpdir, wrong_k, NULL, NULL);
    edgeskd_model *mk = NULL;
    if (edgeskd_open(tmpdir, &o, &mk, err, sizeof err) == EDGESKD_OK) { /* only run() can see the output size */
        float p4[4];
        CHECK_STATUS(edgeskd_classify(mk, input, n_in, p4, 4), EDGESKD_ERR_BACKEND, mk, "labels");
        edgeskd_close(mk);
    } else {
        CHECK(strstr(err, "output") != NULL);
    }
    if (backend == EDGESKD_BACKEND_ONNXRUNTIME) {
        o.device = "TPU";
        CHECK(edgeskd_open(bundle, &o, &mk, err, sizeof err) == EDGESKD_ERR_UNSUPPORTED && strstr(err, "TPU"));
    } else {
        o.device = "NO_SUCH_DEVICE";
        CHECK(edgeskd_open(bundle, &o, &mk, err, sizeof err) == EDGESKD_ERR_BACKEND && strstr(err, "NO_SUCH_DEVICE"));
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }

    free(rgba_from_rgb);
    free(gray);
    free(rgb);
    free(rgba);
    free(input);
    free(again);
    edgeskd_close(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/edgeskd_test_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    test_json();
    test_without_model();
    const char *bundle = getenv("EDGESKD_TEST_BUNDLE");
    if (bundle && bundle[0]) {
        /* EDGESKD_TEST_BACKENDS (e.g. "onnxruntime" or "openvino") narrows the run; default: every built one */
        const char *only = getenv("EDGESKD_TEST_BACKENDS");
        static const char *names[] = {"onnxruntime", "openvino"};
        for (int b = EDGESKD_BACKEND_ONNXRUNTIME; b <= EDGESKD_BACKEND_OPENVINO; b++) {
            if (only && only[0] && !strstr(only, names[b])) continue;
            if (edgeskd_backend_available((edgeskd_backend)b)) test_with_bundle(bundle, (edgeskd_backend)b);
            else printf("note: backend %s is not built; its tests did not run\n", names[b]);
        }
    } else {
        printf("note: EDGESKD_TEST_BUNDLE is not set; the tests that need a real bundle did not run\n");
    }
    char path[512];
    static const char *leftovers[] = {"manifest.json", "manifest.sha256", "model.onnx", "model.xml", "model.bin"};
    for (size_t i = 0; i < sizeof leftovers / sizeof *leftovers; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, leftovers[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    printf("test_errors: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
