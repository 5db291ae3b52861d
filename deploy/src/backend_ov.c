/* OpenVINO backend (C API). Runs the bundle's model.xml + model.bin, or its primary IR (manifest "primary"). The
 * inference precision is always set: f32 unless the manifest's primary model names bf16/f16 (an NNCF int8 IR runs
 * at f32, its int8 layers come from the graph); on CPUs with AMX/AVX512-BF16 OpenVINO would otherwise default to
 * bf16 and move logits by up to ~6e-2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openvino/c/openvino.h>

#include "internal.h"

typedef struct ov_state {
    ov_core_t *core;
    ov_model_t *model;
    ov_compiled_model_t *compiled;
    ov_infer_request_t *request;
    ov_shape_t shape;
    int have_shape;
    uint8_t *xml;     /* the checked IR bytes; OpenVINO may keep pointing into the weights, so they live as long */
    uint8_t *weights; /* as the handle */
    ov_tensor_t *weights_tensor;
} ov_state;

/* Writes OpenVINO's own message for a failed call; returns 1 when `status` is OK. */
static int ov_ok(ov_status_e status, const char *what, char *err, size_t err_size) {
    if (status == OK) return 1;
    const char *detail = ov_get_last_err_msg(); /* a copy we must free, or NULL */
    set_error(err, err_size, "openvino: %s failed: %s%s%s", what, ov_get_error_info(status), detail ? ": " : "",
              detail ? detail : "");
    if (detail) ov_free(detail);
    /* OpenVINO's messages span lines; keep ours on one line */
    for (char *c = err; c && *c; c++) if (*c == '\n' || *c == '\r') *c = ' ';
    return 0;
}

static void ov_destroy(void *p) {
    ov_state *s = p;
    if (!s) return;
    if (s->request) ov_infer_request_free(s->request);
    if (s->compiled) ov_compiled_model_free(s->compiled);
    if (s->model) ov_model_free(s->model);
    if (s->core) ov_core_free(s->core);
    if (s->have_shape) ov_shape_free(&s->shape);
    if (s->weights_tensor) ov_tensor_free(s->weights_tensor);
    free(s->xml);
    free(s->weights);
    free(s);
}

static edgeskd_status ov_run(void *p, float *input, size_t input_floats, float *logits, size_t num_logits,
                             char *err, size_t err_size) {
    ov_state *s = p;
    ov_tensor_t *in = NULL, *out = NULL;
    edgeskd_status st = EDGESKD_ERR_BACKEND;
    size_t count = 0;
    void *data = NULL;
    (void)input_floats; /* checked by the caller against the manifest shape used for s->shape */
    if (!ov_ok(ov_tensor_create_from_host_ptr(F32, s->shape, input, &in), "ov_tensor_create_from_host_ptr", err,
               err_size) ||
        !ov_ok(ov_infer_request_set_input_tensor_by_index(s->request, 0, in), "set_input_tensor", err, err_size) ||
        !ov_ok(ov_infer_request_infer(s->request), "infer", err, err_size) ||
        !ov_ok(ov_infer_request_get_output_tensor_by_index(s->request, 0, &out), "get_output_tensor", err,
               err_size) ||
        !ov_ok(ov_tensor_get_size(out, &count), "ov_tensor_get_size", err, err_size) ||
        !ov_ok(ov_tensor_data(out, &data), "ov_tensor_data", err, err_size)) {
        goto done;
    }
    if (count != num_logits) {
        set_error(err, err_size, "openvino: the output has %zu values; the manifest says %zu labels", count,
                  num_logits);
        goto done;
    }
    memcpy(logits, data, num_logits * sizeof *logits);
    st = EDGESKD_OK;
done:
    if (out) ov_tensor_free(out);
    if (in) ov_tensor_free(in);
    return st;
}

/* Checks the compiled model's single input and output against the manifest. */
static edgeskd_status check_io(ov_state *s, const manifest *m, char *err, size_t err_size) {
    size_t n_in = 0, n_out = 0;
    if (!ov_ok(ov_compiled_model_inputs_size(s->compiled, &n_in), "inputs_size", err, err_size) ||
        !ov_ok(ov_compiled_model_outputs_size(s->compiled, &n_out), "outputs_size", err, err_size)) {
        return EDGESKD_ERR_BACKEND;
    }
    if (n_in != 1 || n_out != 1) {
        set_error(err, err_size, "%s has %zu inputs and %zu outputs; expected 1 and 1", m->openvino_xml.path, n_in,
                  n_out);
        return EDGESKD_ERR_MANIFEST;
    }
    edgeskd_status st = EDGESKD_OK;
    for (int which = 0; which < 2 && st == EDGESKD_OK; which++) {
        ov_output_const_port_t *port = NULL;
        char *name = NULL;
        ov_shape_t shape = {0, NULL};
        ov_status_e os = which == 0 ? ov_compiled_model_input(s->compiled, &port)
                                    : ov_compiled_model_output(s->compiled, &port);
        if (!ov_ok(os, "getting the model's port", err, err_size) ||
            !ov_ok(ov_port_get_any_name(port, &name), "ov_port_get_any_name", err, err_size) ||
            !ov_ok(ov_const_port_get_shape(port, &shape), "ov_const_port_get_shape", err, err_size)) {
            st = EDGESKD_ERR_BACKEND;
        } else {
            const char *want = which == 0 ? m->input_name : m->output_name;
            if (strcmp(name, want) != 0) {
                set_error(err, err_size, "%s: its %s is named \"%s\"; the manifest says \"%s\"", m->openvino_xml.path,
                          which == 0 ? "input" : "output", name, want);
                st = EDGESKD_ERR_MANIFEST;
            } else if (which == 0) {
                int same = shape.rank == 4;
                for (int i = 0; same && i < 4; i++) same = shape.dims[i] == m->input_shape[i];
                if (!same) {
                    set_error(err, err_size, "%s: input shape differs from the manifest's [1, %lld, %lld, %lld]",
                              m->openvino_xml.path, (long long)m->input_shape[1], (long long)m->input_shape[2],
                              (long long)m->input_shape[3]);
                    st = EDGESKD_ERR_MANIFEST;
                }
            }
        }
        if (shape.dims) ov_shape_free(&shape);
        if (name) ov_free(name);
        if (port) ov_output_const_port_free(port);
    }
    return st;
}

edgeskd_status backend_ov_open(const manifest *m, const edgeskd_options *opts, backend_impl *out, char *err,
                               size_t err_size) {
    if (!m->openvino_xml.path || !m->openvino_bin.path) {
        set_error(err, err_size, "the bundle has no OpenVINO IR (manifest model.files.openvino_xml/openvino_bin is null)");
        return EDGESKD_ERR_IO;
    }
    ov_state *s = calloc(1, sizeof *s);
    if (!s) { set_error(err, err_size, "out of memory"); return EDGESKD_ERR_OUT_OF_MEMORY; }
    /* The checked bytes are what OpenVINO reads (read_model_from_memory_buffer), not the files a second time. */
    size_t xml_len = 0, bin_len = 0;
    edgeskd_status rs = read_verified(&m->openvino_xml, &s->xml, &xml_len, err, err_size);
    if (rs == EDGESKD_OK) rs = read_verified(&m->openvino_bin, &s->weights, &bin_len, err, err_size);
    if (rs != EDGESKD_OK) { ov_destroy(s); return rs; }
    const char *device = opts->device ? opts->device : "CPU";
    char threads[16];
    snprintf(threads, sizeof threads, "%d", (int)opts->num_threads);
    edgeskd_status st = EDGESKD_ERR_BACKEND;
    ov_status_e cs;
    ov_shape_t wshape = {0, NULL};
    if (!ov_ok(ov_core_create(&s->core), "ov_core_create", err, err_size) ||
        !ov_ok(ov_shape_create(1, (int64_t[]){(int64_t)bin_len}, &wshape), "ov_shape_create", err, err_size)) {
        goto fail;
    }
    cs = ov_tensor_create_from_host_ptr(U8, wshape, s->weights, &s->weights_tensor);
    ov_shape_free(&wshape);
    if (!ov_ok(cs, "wrapping the weights", err, err_size) ||
        !ov_ok(ov_core_read_model_from_memory_buffer(s->core, (const char *)s->xml, xml_len, s->weights_tensor,
                                                     &s->model), "reading the IR", err, err_size)) {
        goto fail;
    }
    /* Pin the input to the manifest's [1, C, S, S] (exports often leave the batch dynamic): static shapes compile
     * to faster code, and a model whose fixed dimensions disagree with the manifest fails here. */
    ov_partial_shape_t pshape = {0};
    if (!ov_ok(ov_partial_shape_create_static(4, m->input_shape, &pshape), "ov_partial_shape_create_static", err,
               err_size)) {
        goto fail;
    }
    cs = ov_model_reshape_single_input(s->model, pshape);
    ov_partial_shape_free(&pshape);
    if (!ov_ok(cs, "setting the manifest's input shape", err, err_size)) {
        st = EDGESKD_ERR_MANIFEST;
        goto fail;
    }
    if (opts->num_threads > 0) {
        cs = ov_core_compile_model(s->core, s->model, device, 6, &s->compiled, ov_property_key_hint_inference_precision,
                                   m->ov_precision_hint, ov_property_key_hint_performance_mode, "LATENCY",
                                   ov_property_key_inference_num_threads, threads);
    } else {
        cs = ov_core_compile_model(s->core, s->model, device, 4, &s->compiled, ov_property_key_hint_inference_precision,
                                   m->ov_precision_hint, ov_property_key_hint_performance_mode, "LATENCY");
    }
    if (!ov_ok(cs, "compiling the model", err, err_size)) {
        /* an unknown or absent device ends up here: say which one was asked for */
        size_t used = err ? strlen(err) : 0;
        if (err && used + 1 < err_size) snprintf(err + used, err_size - used, " (device \"%s\")", device);
        goto fail;
    }
    st = check_io(s, m, err, err_size);
    if (st != EDGESKD_OK) goto fail;
    st = EDGESKD_ERR_BACKEND;
    if (!ov_ok(ov_compiled_model_create_infer_request(s->compiled, &s->request), "create_infer_request", err,
               err_size) ||
        !ov_ok(ov_shape_create(4, m->input_shape, &s->shape), "ov_shape_create", err, err_size)) {
        goto fail;
    }
    s->have_shape = 1;
    out->state = s;
    out->run = ov_run;
    out->destroy = ov_destroy;
    return EDGESKD_OK;
fail:
    ov_destroy(s);
    return st;
}
