/*
 * classify: classify one 8-bit PGM (grayscale) or PPM (RGB) image with an edgeskd bundle.
 *
 *   classify BUNDLE_DIR IMAGE.pgm|IMAGE.ppm [--backend onnxruntime|openvino] [--threads N] [--force-threads]
 *            [--device NAME] [--manifest-sha256 HEX] [--all]
 *
 * Prints the top label and its probability ("PNEUMONIA 0.912345"); with --all, every label, in the bundle's order.
 * --threads is at most the machine's online cores unless --force-threads; images are at most
 * EDGESKD_MAX_IMAGE_PIXELS (64 Mi) pixels; --manifest-sha256 pins the bundle (see edgeskd.h).
 * Exit status: 0 on success, 1 on a runtime error (a tampered bundle included), 2 on bad usage or an unreadable
 * or oversized image.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeskd.h"

typedef struct image {
    unsigned char *pixels;
    size_t width, height, channels;
} image;

/* Skips whitespace and '#' comments between PNM header fields. */
static int skip_space(FILE *f) {
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(f)) != EOF && c != '\n') {}
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            ungetc(c, f);
            return 1;
        }
    }
    return 0;
}

static int read_number(FILE *f, size_t *out) {
    int c;
    size_t v = 0, digits = 0;
    if (!skip_space(f)) return 0;
    while ((c = fgetc(f)) != EOF && c >= '0' && c <= '9') {
        if (v > 1000000) return 0;
        v = v * 10 + (size_t)(c - '0');
        digits++;
    }
    if (digits == 0 || c == EOF) return 0; /* one whitespace byte must end the field */
    *out = v;
    return 1;
}

/* Reads binary PGM (P5) or PPM (P6) with maxval 255. Returns NULL-pixels and prints why on failure. */
static image read_pnm(const char *path) {
    image img = {NULL, 0, 0, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "classify: cannot open %s\n", path);
        return img;
    }
    char magic[2];
    size_t maxval = 0;
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '6') ||
        !read_number(f, &img.width) || !read_number(f, &img.height) || !read_number(f, &maxval) || maxval != 255 ||
        img.width == 0 || img.height == 0) {
        fprintf(stderr, "classify: %s is not an 8-bit binary PGM (P5) or PPM (P6) file with maxval 255\n", path);
        fclose(f);
        return img;
    }
    img.channels = magic[1] == '5' ? 1 : 3;
    /* bound the allocation by the header, before reading any pixel (read_number caps each side at ~10^7) */
    if (img.width > (size_t)EDGESKD_MAX_IMAGE_PIXELS / img.height) {
        fprintf(stderr, "classify: %s is %zux%zu = %.0f pixels; the limit is %u (EDGESKD_MAX_IMAGE_PIXELS)\n", path,
                img.width, img.height, (double)img.width * (double)img.height, (unsigned)EDGESKD_MAX_IMAGE_PIXELS);
        fclose(f);
        return img;
    }
    size_t bytes = img.width * img.height * img.channels;
    img.pixels = malloc(bytes);
    if (!img.pixels || fread(img.pixels, 1, bytes, f) != bytes) {
        fprintf(stderr, "classify: %s: pixel data is truncated (expected %zu bytes)\n", path, bytes);
        free(img.pixels);
        img.pixels = NULL;
    }
    fclose(f);
    return img;
}

static int usage(void) {
    fprintf(stderr, "usage: classify BUNDLE_DIR IMAGE.pgm|IMAGE.ppm [--backend onnxruntime|openvino] "
                    "[--threads N] [--force-threads] [--device NAME] [--manifest-sha256 HEX] [--all]\n");
    return 2;
}

/* A whole decimal number in [0, EDGESKD_MAX_THREADS]; the library checks it against the cores. */
static int parse_threads(const char *text, int32_t *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < 0 || v > EDGESKD_MAX_THREADS) {
        fprintf(stderr, "classify: --threads %s; expected a whole number from 0 (runtime default) to %d\n", text,
                EDGESKD_MAX_THREADS);
        return 0;
    }
    *out = (int32_t)v;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    edgeskd_options opts;
    edgeskd_options_init(&opts);
    int all = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--backend") == 0) {
            const char *b = argv[++i];
            if (strcmp(b, "onnxruntime") == 0) opts.backend = EDGESKD_BACKEND_ONNXRUNTIME;
            else if (strcmp(b, "openvino") == 0) opts.backend = EDGESKD_BACKEND_OPENVINO;
            else if (strcmp(b, "tensorrt") == 0) opts.backend = EDGESKD_BACKEND_TENSORRT;
            else return usage();
        } else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) {
            if (!parse_threads(argv[++i], &opts.num_threads)) return 2;
        } else if (strcmp(argv[i], "--force-threads") == 0) {
            opts.flags |= EDGESKD_OPEN_FORCE_THREADS;
        } else if (i + 1 < argc && strcmp(argv[i], "--manifest-sha256") == 0) {
            opts.manifest_sha256 = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--device") == 0) {
            opts.device = argv[++i];
        } else {
            return usage();
        }
    }

    image img = read_pnm(argv[2]);
    if (!img.pixels) return 2;

    char err[1024];
    edgeskd_model *model = NULL;
    if (edgeskd_open(argv[1], &opts, &model, err, sizeof err) != EDGESKD_OK) {
        fprintf(stderr, "classify: %s\n", err);
        free(img.pixels);
        return 1;
    }
    int rc = 1;
    size_t k = 0;
    float *probs = NULL;
    if (edgeskd_num_labels(model, &k) != EDGESKD_OK || !(probs = malloc(k * sizeof *probs))) {
        fprintf(stderr, "classify: cannot read the label count\n");
    } else if (edgeskd_classify_pixels(model, img.pixels, img.width, img.height, img.channels, 0, probs, k) !=
               EDGESKD_OK) {
        fprintf(stderr, "classify: %s\n", edgeskd_last_error(model));
    } else {
        size_t best = 0;
        for (size_t i = 1; i < k; i++) best = probs[i] > probs[best] ? i : best;
        for (size_t i = 0; i < k; i++) {
            if (!all && i != best) continue;
            const char *label = NULL;
            edgeskd_label(model, i, &label);
            printf("%s %.6f\n", label, (double)probs[i]);
        }
        rc = 0;
    }
    free(probs);
    free(img.pixels);
    edgeskd_close(model);
    return rc;
}
