/*
 * Threads sharing one handle: each thread's failed call leaves its own message (thread-local), getters and
 * classify run concurrently under the handle's lock. Built plain (c_threads) and with ThreadSanitizer
 * (c_threads_tsan) when the compiler supports -fsanitize=thread. Needs EDGESKD_TEST_BUNDLE; exits 77 (skipped)
 * without it. Ends with "N passed, N failed".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeskd.h"

enum { THREADS = 4, ROUNDS = 200 };

static edgeskd_model *shared;
static size_t num_labels;

typedef struct result {
    int id;
    int passed, failed;
} result;

static void *worker(void *arg) {
    result *r = arg;
    uint8_t pixels[16 * 16];
    for (size_t i = 0; i < sizeof pixels; i++) pixels[i] = (uint8_t)(i * 7 + (size_t)r->id);
    float probs[16];
    for (int round = 0; round < ROUNDS; round++) {
        /* a failure whose message names this thread's own index */
        size_t index = num_labels + (size_t)r->id * 1000 + (size_t)round;
        const char *label = NULL;
        char want[64];
        snprintf(want, sizeof want, "index %zu ", index);
        edgeskd_status st = edgeskd_label(shared, index, &label);
        const char *msg = edgeskd_last_error(shared);
        if (st == EDGESKD_ERR_INVALID_ARGUMENT && strstr(msg, want)) r->passed++;
        else { r->failed++; fprintf(stderr, "thread %d: expected \"%s\" in \"%s\"\n", r->id, want, msg); }
        /* successes clear only this thread's message */
        size_t k = 0;
        if (edgeskd_num_labels(shared, &k) == EDGESKD_OK && k == num_labels && edgeskd_last_error(shared)[0] == '\0')
            r->passed++;
        else r->failed++;
        if (round % 20 == 0) {
            if (edgeskd_classify_pixels(shared, pixels, 16, 16, 1, 0, probs, 16) == EDGESKD_OK) r->passed++;
            else { r->failed++; fprintf(stderr, "thread %d: classify: %s\n", r->id, edgeskd_last_error(shared)); }
        }
    }
    return NULL;
}

int main(void) {
    const char *bundle = getenv("EDGESKD_TEST_BUNDLE");
    if (!bundle || !bundle[0]) {
        printf("skipped: EDGESKD_TEST_BUNDLE is not set\n");
        return 77;
    }
    edgeskd_options o;
    edgeskd_options_init(&o);
    o.num_threads = 1; /* no runtime thread pool: the threads here are ours */
    char err[1024];
    if (edgeskd_open(bundle, &o, &shared, err, sizeof err) != EDGESKD_OK) {
        fprintf(stderr, "open %s: %s\n", bundle, err);
        return 1;
    }
    edgeskd_num_labels(shared, &num_labels);
    pthread_t t[THREADS];
    result r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (result){i, 0, 0};
        pthread_create(&t[i], NULL, worker, &r[i]);
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        passed += r[i].passed;
        failed += r[i].failed;
    }
    /* the main thread made no failed call: it sees no message even though every worker failed on this handle */
    if (edgeskd_last_error(shared)[0] == '\0') passed++;
    else failed++;
    edgeskd_close(shared);
    printf("test_threads: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
