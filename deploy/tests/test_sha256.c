/*
 * SHA-256 tests: FIPS 180-4 vectors for both implementations, and SHA-NI == portable on every length 0..1000 and
 * every split of the input. When the CPU lacks SHA-NI the SHA-NI rows say so and test the fallback.
 *
 * Also a measuring tool for benchmarks/c_open_verify.py:
 *   test_sha256 FILE portable|shani|auto REPEATS   prints "<hex> <best seconds> <impl used>"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sha256.h"

static int passed, failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) passed++;                                                              \
        else { failed++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

static void vectors(sha256_impl impl) {
    static const struct { const char *text; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
         "nopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        sha256_hex(v[i].text, strlen(v[i].text), impl, hex);
        CHECK(strcmp(hex, v[i].hex) == 0);
    }
    /* one million 'a', fed in uneven pieces */
    sha256_ctx c;
    uint8_t d[32];
    char piece[997];
    memset(piece, 'a', sizeof piece);
    sha256_init(&c, impl);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof piece ? left : sizeof piece;
        sha256_update(&c, piece, n);
        left -= n;
    }
    sha256_final(&c, d);
    sha256_to_hex(d, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
}

static void agree(void) {
    uint8_t buf[1000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) { x = x * 1103515245u + 12345u; buf[i] = (uint8_t)(x >> 16); }
    int bad = 0;
    for (size_t n = 0; n <= sizeof buf; n++) {
        char a[65], b[65];
        sha256_hex(buf, n, SHA256_PORTABLE, a);
        sha256_hex(buf, n, SHA256_SHANI, b);
        if (strcmp(a, b) != 0) bad++;
    }
    CHECK(bad == 0);
    char whole[65];
    sha256_hex(buf, 300, SHA256_AUTO, whole);
    for (size_t split = 0; split <= 300; split++) { /* incremental updates give the one-shot digest */
        sha256_ctx c;
        uint8_t d[32];
        char hex[65];
        sha256_init(&c, SHA256_AUTO);
        sha256_update(&c, buf, split);
        sha256_update(&c, buf + split, 300 - split);
        sha256_final(&c, d);
        sha256_to_hex(d, hex);
        if (strcmp(hex, whole) != 0) bad++;
    }
    CHECK(bad == 0);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int measure(const char *path, const char *which, int repeats) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "test_sha256: cannot open %s\n", path); return 2; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) { fprintf(stderr, "test_sha256: cannot read %s\n", path); return 2; }
    fclose(f);
    sha256_impl impl = strcmp(which, "portable") == 0 ? SHA256_PORTABLE
                       : strcmp(which, "shani") == 0  ? SHA256_SHANI : SHA256_AUTO;
    if (impl == SHA256_SHANI && !sha256_shani_available()) {
        fprintf(stderr, "test_sha256: this CPU (or build) has no SHA-NI\n");
        free(data);
        return 3;
    }
    double best = 1e30;
    char hex[65];
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        sha256_hex(data, (size_t)size, impl, hex);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    sha256_ctx probe;
    sha256_init(&probe, impl);
    printf("%s %.6f %s\n", hex, best, probe.shani ? "shani" : "portable");
    free(data);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4) return measure(argv[1], argv[2], atoi(argv[3]) > 0 ? atoi(argv[3]) : 1);
    vectors(SHA256_PORTABLE);
    vectors(SHA256_SHANI);
    agree();
    printf("note: SHA-NI %s on this CPU\n", sha256_shani_available() ? "available and tested"
                                                                      : "absent; the SHA-NI rows tested the fallback");
    printf("test_sha256: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
