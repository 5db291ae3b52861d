/*
 * The pixel pipeline of edgeskd/data/preprocess.py, step for step, in float32:
 *   1. x = pixel / 255
 *   2. gray -> replicated to the model's channels; RGB -> BT.601 luma when the model takes 1 channel; RGBA drops alpha
 *   3. resize to S x S like torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True):
 *      separable, width first then height; per output index a triangle filter whose support widens by the scale
 *      factor when shrinking, weights normalised to sum 1; plain bilinear (clamped at the borders) when enlarging
 *   4. (x - mean[c]) / std[c]
 * The weight arithmetic mirrors PyTorch's CPU kernel (float32 weights, same expressions, same order of summation)
 * so results agree to float rounding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const float LUMA[3] = {0.299f, 0.587f, 0.114f};

/* Filter taps for one axis: output i reads `size[i]` inputs from `start[i]` with weights w[i * max_taps + j]. */
typedef struct taps {
    size_t *start;
    size_t *size;
    float *w;
    size_t max_taps;
} taps;

static void taps_free(taps *t) {
    free(t->start);
    free(t->size);
    free(t->w);
}

static float triangle(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static int taps_init(taps *t, size_t in_size, size_t out_size) {
    memset(t, 0, sizeof *t);
    const float scale = (float)in_size / (float)out_size;
    const float support = (scale >= 1.0f) ? 1.0f * scale : 1.0f; /* (interp_size=2) * 0.5 * scale */
    t->max_taps = (size_t)ceilf(support) * 2 + 1;
    t->start = malloc(out_size * sizeof *t->start);
    t->size = malloc(out_size * sizeof *t->size);
    t->w = calloc(out_size * t->max_taps, sizeof *t->w);
    if (!t->start || !t->size || !t->w) { taps_free(t); return 0; }
    const float invscale = (scale >= 1.0f) ? (float)(1.0 / scale) : 1.0f;
    for (size_t i = 0; i < out_size; i++) {
        const float center = (float)(scale * ((double)i + 0.5));
        long long xmin = (long long)(center - support + 0.5); /* truncation, as in PyTorch */
        if (xmin < 0) xmin = 0;
        long long xmax = (long long)(center + support + 0.5);
        if (xmax > (long long)in_size) xmax = (long long)in_size;
        size_t n = (size_t)(xmax - xmin);
        if (n > t->max_taps) n = t->max_taps;
        float *w = t->w + i * t->max_taps;
        float total = 0.0f;
        for (size_t j = 0; j < n; j++) {
            w[j] = triangle((float)(((float)((long long)j + xmin) - center + 0.5) * invscale));
            total += w[j];
        }
        if (total != 0.0f) {
            for (size_t j = 0; j < n; j++) w[j] /= total;
        }
        t->start[i] = (size_t)xmin;
        t->size[i] = n;
    }
    return 1;
}

/* One output sample: sum_j w[j] * src[j * stride], accumulated in float in index order. */
static inline float apply(const float *src, size_t stride, const float *w, size_t n) {
    float acc = src[0] * w[0];
    for (size_t j = 1; j < n; j++) acc += src[j * stride] * w[j];
    return acc;
}

edgeskd_status preprocess_pixels(const manifest *m, const uint8_t *pixels, size_t width, size_t height,
                                 size_t channels, size_t row_stride, float *out, char *err, size_t err_size) {
    const size_t S = m->size;
    /* The resize works on 1 plane when either side is gray (replication commutes with the linear resize). */
    const size_t planes = (channels == 1 || m->channels == 1) ? 1 : 3;
    float *row = malloc(width * planes * sizeof *row);           /* one source row, steps 1-2 applied */
    float *mid = malloc(planes * height * S * sizeof *mid);       /* after the horizontal pass: planes x H x S */
    float *res = malloc(planes * S * S * sizeof *res);            /* after the vertical pass: planes x S x S */
    taps tx, ty;
    int have_tx = taps_init(&tx, width, S);
    int have_ty = taps_init(&ty, height, S);
    edgeskd_status st = EDGESKD_OK;
    if (!row || !mid || !res || !have_tx || !have_ty) {
        set_error(err, err_size, "out of memory preprocessing a %zux%zu image", width, height);
        st = EDGESKD_ERR_OUT_OF_MEMORY;
        goto done;
    }

    for (size_t y = 0; y < height; y++) {
        const uint8_t *src = pixels + y * row_stride;
        for (size_t x = 0; x < width; x++) {
            const uint8_t *px = src + x * channels;
            if (channels == 1) {
                row[x] = (float)px[0] / 255.0f;
            } else if (planes == 1) { /* RGB(A) into a 1-channel model */
                float r = (float)px[0] / 255.0f, g = (float)px[1] / 255.0f, b = (float)px[2] / 255.0f;
                row[x] = r * LUMA[0] + g * LUMA[1] + b * LUMA[2];
            } else {
                for (size_t c = 0; c < 3; c++) row[c * width + x] = (float)px[c] / 255.0f;
            }
        }
        for (size_t c = 0; c < planes; c++) {
            const float *in = row + c * width;
            float *o = mid + (c * height + y) * S;
            for (size_t i = 0; i < S; i++) o[i] = apply(in + tx.start[i], 1, tx.w + i * tx.max_taps, tx.size[i]);
        }
    }
    for (size_t c = 0; c < planes; c++) {
        const float *in = mid + c * height * S;
        float *o = res + c * S * S;
        for (size_t i = 0; i < S; i++) {
            const float *w = ty.w + i * ty.max_taps;
            const float *first = in + ty.start[i] * S;
            for (size_t x = 0; x < S; x++) o[i * S + x] = apply(first + x, S, w, ty.size[i]);
        }
    }
    for (size_t c = 0; c < m->channels; c++) {
        const float *in = res + (planes == 1 ? 0 : c) * S * S;
        float *o = out + c * S * S;
        for (size_t k = 0; k < S * S; k++) o[k] = (in[k] - m->mean[c]) / m->std[c];
    }

done:
    if (have_tx) taps_free(&tx);
    if (have_ty) taps_free(&ty);
    free(row);
    free(mid);
    free(res);
    return st;
}
