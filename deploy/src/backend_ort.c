/* ONNX Runtime backend (C API). Runs the bundle's model.onnx; ORT_API_VERSION comes from the headers we build with,
 * and newer runtimes serve older API versions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <onnxruntime_c_api.h>

#include "internal.h"

typedef struct ort_state {
    const OrtApi *api;
    OrtEnv *env;
    OrtSession *session;
    OrtMemoryInfo *cpu;
    char *input_name;
    char *output_name;
    int64_t shape[4];
} ort_state;

/* Turns an OrtStatus into our message (and frees it). Returns 1 when `s` is success. */
static int ort_ok(const OrtApi *api, OrtStatus *s, const char *what, char *err, size_t err_size) {
    if (!s) return 1;
    set_error(err, err_size, "onnxruntime: %s failed: %s", what, api->GetErrorMessage(s));
    api->ReleaseStatus(s);
    return 0;
}

static void ort_destroy(void *p) {
    ort_state *s = p;
    if (!s) return;
    if (s->cpu) s->api->ReleaseMemoryInfo(s->cpu);
    if (s->session) s->api->ReleaseSession(s->session);
    if (s->env) s->api->ReleaseEnv(s->env);
    free(s->input_name);
    free(s->output_name);
    free(s);
}

static edgeskd_status ort_run(void *p, float *input, size_t input_floats, float *logits, size_t num_logits,
                              char *err, size_t err_size) {
    ort_state *s = p;
    const OrtApi *api = s->api;
    OrtValue *in = NULL, *out = NULL;
    OrtTensorTypeAndShapeInfo *info = NULL;
    edgeskd_status st = EDGESKD_ERR_BACKEND;
    const char *in_names[1] = {s->input_name};
    const char *out_names[1] = {s->output_name};
    if (!ort_ok(api, api->CreateTensorWithDataAsOrtValue(s->cpu, input, input_floats * sizeof(float), s->shape, 4,
                                                         ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in),
                "CreateTensorWithDataAsOrtValue", err, err_size) ||
        !ort_ok(api, api->Run(s->session, NULL, in_names, (const OrtValue *const *)&in, 1, out_names, 1, &out), "Run",
                err, err_size)) {
        goto done;
    }
    size_t count = 0;
    float *data = NULL;
    if (!ort_ok(api, api->GetTensorTypeAndShape(out, &info), "GetTensorTypeAndShape", err, err_size) ||
        !ort_ok(api, api->GetTensorShapeElementCount(info, &count), "GetTensorShapeElementCount", err, err_size) ||
        !ort_ok(api, api->GetTensorMutableData(out, (void **)&data), "GetTensorMutableData", err, err_size)) {
        goto done;
    }
    if (count != num_logits) {
        set_error(err, err_size, "onnxruntime: output %s has %zu values; the manifest says %zu labels",
                  s->output_name, count, num_logits);
        goto done;
    }
    memcpy(logits, data, num_logits * sizeof *logits);
    st = EDGESKD_OK;
done:
    if (info) api->ReleaseTensorTypeAndShapeInfo(info);
    if (out) api->ReleaseValue(out);
    if (in) api->ReleaseValue(in);
    return st;
}

/* Copies the name of input/output 0 and checks it against the manifest. */
static edgeskd_status check_io(ort_state *s, const manifest *m, char *err, size_t err_size) {
    const OrtApi *api = s->api;
    size_t n_in = 0, n_out = 0;
    if (!ort_ok(api, api->SessionGetInputCount(s->session, &n_in), "SessionGetInputCount", err, err_size) ||
        !ort_ok(api, api->SessionGetOutputCount(s->session, &n_out), "SessionGetOutputCount", err, err_size)) {
        return EDGESKD_ERR_BACKEND;
    }
    if (n_in != 1 || n_out != 1) {
        set_error(err, err_size, "%s has %zu inputs and %zu outputs; expected 1 and 1", m->onnx.path, n_in, n_out);
        return EDGESKD_ERR_MANIFEST;
    }
    OrtAllocator *alloc = NULL;
    char *name = NULL;
    if (!ort_ok(api, api->GetAllocatorWithDefaultOptions(&alloc), "GetAllocatorWithDefaultOptions", err, err_size))
        return EDGESKD_ERR_BACKEND;
    for (int which = 0; which < 2; which++) {
        OrtStatus *os = which == 0 ? api->SessionGetInputName(s->session, 0, alloc, &name)
                                   : api->SessionGetOutputName(s->session, 0, alloc, &name);
        if (!ort_ok(api, os, "SessionGetInputName/OutputName", err, err_size)) return EDGESKD_ERR_BACKEND;
        const char *want = which == 0 ? m->input_name : m->output_name;
        int same = strcmp(name, want) == 0;
        if (!same) {
            set_error(err, err_size, "%s: its %s is named \"%s\"; the manifest says \"%s\"", m->onnx.path,
                      which == 0 ? "input" : "output", name, want);
        }
        int freed = ort_ok(api, api->AllocatorFree(alloc, name), "AllocatorFree", err, err_size);
        if (!same) return EDGESKD_ERR_MANIFEST;
        if (!freed) return EDGESKD_ERR_BACKEND;
    }
    /* The input's static dimensions must agree with the manifest (a dynamic one, -1, takes the manifest's). */
    OrtTypeInfo *type = NULL;
    const OrtTensorTypeAndShapeInfo *tinfo = NULL;
    size_t rank = 0;
    int64_t dims[4] = {0};
    edgeskd_status st = EDGESKD_ERR_BACKEND;
    if (ort_ok(api, api->SessionGetInputTypeInfo(s->session, 0, &type), "SessionGetInputTypeInfo", err, err_size) &&
        ort_ok(api, api->CastTypeInfoToTensorInfo(type, &tinfo), "CastTypeInfoToTensorInfo", err, err_size) &&
        ort_ok(api, api->GetDimensionsCount(tinfo, &rank), "GetDimensionsCount", err, err_size)) {
        if (rank != 4) {
            set_error(err, err_size, "%s: input has rank %zu; expected 4 (NCHW)", m->onnx.path, rank);
            st = EDGESKD_ERR_MANIFEST;
        } else if (ort_ok(api, api->GetDimensions(tinfo, dims, 4), "GetDimensions", err, err_size)) {
            st = EDGESKD_OK;
            for (int i = 0; i < 4; i++) {
                if (dims[i] >= 0 && dims[i] != m->input_shape[i]) {
                    set_error(err, err_size, "%s: input dimension %d is %lld; the manifest says %lld", m->onnx.path,
                              i, (long long)dims[i], (long long)m->input_shape[i]);
                    st = EDGESKD_ERR_MANIFEST;
                    break;
                }
            }
        }
    }
    if (type) api->ReleaseTypeInfo(type);
    return st;
}

edgeskd_status backend_ort_open(const manifest *m, const edgeskd_options *opts, backend_impl *out, char *err,
                                size_t err_size) {
    if (!m->onnx.path) {
        set_error(err, err_size, "the bundle has no ONNX model (manifest model.files.onnx is null)");
        return EDGESKD_ERR_IO;
    }
    const char *device = opts->device ? opts->device : "CPU";
    int cuda = strcasecmp(device, "CUDA") == 0;
    if (!cuda && strcasecmp(device, "CPU") != 0) {
        set_error(err, err_size, "onnxruntime backend: device \"%s\" is not supported; expected \"CPU\" or \"CUDA\"",
                  device);
        return EDGESKD_ERR_UNSUPPORTED;
    }

    const OrtApi *api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (!api) {
        set_error(err, err_size, "onnxruntime %s does not serve C API version %d", OrtGetApiBase()->GetVersionString(),
                  ORT_API_VERSION);
        return EDGESKD_ERR_UNSUPPORTED;
    }
    /* The checked bytes are what ONNX Runtime loads (CreateSessionFromArray), not the file a second time. */
    uint8_t *model_bytes = NULL;
    size_t model_len = 0;
    edgeskd_status rs = read_verified(&m->onnx, &model_bytes, &model_len, err, err_size);
    if (rs != EDGESKD_OK) return rs;
    ort_state *s = calloc(1, sizeof *s);
    if (!s) { free(model_bytes); set_error(err, err_size, "out of memory"); return EDGESKD_ERR_OUT_OF_MEMORY; }
    s->api = api;
    memcpy(s->shape, m->input_shape, sizeof s->shape);
    s->input_name = malloc(strlen(m->input_name) + 1);
    s->output_name = malloc(strlen(m->output_name) + 1);
    if (!s->input_name || !s->output_name) {
        free(model_bytes);
        ort_destroy(s);
        set_error(err, err_size, "out of memory");
        return EDGESKD_ERR_OUT_OF_MEMORY;
    }
    strcpy(s->input_name, m->input_name);
    strcpy(s->output_name, m->output_name);

    OrtSessionOptions *so = NULL;
    edgeskd_status st = EDGESKD_ERR_BACKEND;
    if (!ort_ok(api, api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "edgeskd", &s->env), "CreateEnv", err, err_size) ||
        !ort_ok(api, api->CreateSessionOptions(&so), "CreateSessionOptions", err, err_size) ||
        !ort_ok(api, api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "SetSessionGraphOptimizationLevel",
                err, err_size) ||
        !ort_ok(api, api->SetInterOpNumThreads(so, 1), "SetInterOpNumThreads", err, err_size) ||
        (opts->num_threads > 0 &&
         !ort_ok(api, api->SetIntraOpNumThreads(so, opts->num_threads), "SetIntraOpNumThreads", err, err_size))) {
        goto fail;
    }
    if (cuda) { /* asked for explicitly: a missing CUDA provider is an error, not a silent CPU fallback */
        OrtCUDAProviderOptionsV2 *cuda_opts = NULL;
        int ok = ort_ok(api, api->CreateCUDAProviderOptions(&cuda_opts), "CreateCUDAProviderOptions", err, err_size);
        if (ok) {
            ok = ort_ok(api, api->SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda_opts),
                        "enabling the CUDA execution provider", err, err_size);
            api->ReleaseCUDAProviderOptions(cuda_opts);
        }
        if (!ok) { st = EDGESKD_ERR_UNSUPPORTED; goto fail; }
    }
    int created = ort_ok(api, api->CreateSessionFromArray(s->env, model_bytes, model_len, so, &s->session),
                         "CreateSession", err, err_size);
    free(model_bytes); /* the session keeps its own copy */
    model_bytes = NULL;
    if (!created ||
        !ort_ok(api, api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &s->cpu), "CreateCpuMemoryInfo",
                err, err_size)) {
        goto fail;
    }
    st = check_io(s, m, err, err_size);
    if (st != EDGESKD_OK) goto fail;
    api->ReleaseSessionOptions(so);
    out->state = s;
    out->run = ort_run;
    out->destroy = ort_destroy;
    return EDGESKD_OK;
fail:
    free(model_bytes);
    if (so) api->ReleaseSessionOptions(so);
    ort_destroy(s);
    return st;
}
