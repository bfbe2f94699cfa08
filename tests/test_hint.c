/* The after-run layout hint: spoken only when the run's own numbers say the sum took
 * most of the time on a node of several ranks, and then with those numbers. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_run.h"
#include "nn/hint.h"

/* The hint's text for `in` ("" when there is none); the caller frees it. */
static char *hint_text(const nn_hint_input *in, int *spoke) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    *spoke = nn_layout_hint(f, in);
    fclose(f);
    return text;
}

static void test_most_of_the_time_in_the_sum(void) {
    nn_hint_input in = {.train_seconds = 4.0, .allreduce_seconds = 3.0, .allreduce_wait_seconds = 1.0,
                        .ranks_per_node = 16, .threads = 1, .node_cores = 16};
    int spoke;
    char *text = hint_text(&in, &spoke);
    CU_ASSERT_EQUAL(spoke, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "took 75% of the training time (25% waiting"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "16 ranks x 1 thread a node"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "say 8 x 2"));
    CU_ASSERT_EQUAL(strchr(text, '\n'), text + strlen(text) - 1); /* one line */
    free(text);
}

/* More ranks x threads than the job's cores on the node: the suggestion fits them. */
static void test_oversubscribed(void) {
    const struct {
        int ranks, threads;
        long cores;
        const char *says;
    } cases[] = {
        {2, 1, 1, "2 ranks x 1 thread a node on the 1 core the job has there; fewer ranks a node, one thread a core (say 1 x 1)"},
        {8, 1, 2, "8 ranks x 1 thread a node on the 2 cores the job has there; fewer ranks a node, one thread a core (say 1 x 2)"},
        {8, 2, 8, "8 ranks x 2 threads a node on the 8 cores the job has there; fewer ranks a node, one thread a core (say 2 x 4)"},
        {4, 1, 0, "4 ranks x 1 thread a node; fewer ranks a node with more threads each (say 2 x 2)"}, /* cores unknown */
        /* an odd count: half the ranks, rounded down, share the cores (was 2 x 4 on 6 cores) */
        {3, 2, 6, "3 ranks x 2 threads a node; fewer ranks a node with more threads each (say 1 x 6)"},
        {5, 1, 5, "5 ranks x 1 thread a node; fewer ranks a node with more threads each (say 2 x 2)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_hint_input in = {.train_seconds = 2.0, .allreduce_seconds = 1.5, .ranks_per_node = cases[i].ranks,
                            .threads = cases[i].threads, .node_cores = cases[i].cores};
        int spoke;
        char *text = hint_text(&in, &spoke);
        CU_ASSERT_EQUAL(spoke, 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, cases[i].says));
        if (!strstr(text, cases[i].says)) fprintf(stderr, "hint: %s", text);
        free(text);
    }
}

static void test_silent_otherwise(void) {
    const nn_hint_input quiet[] = {
        {.train_seconds = 4.0, .allreduce_seconds = 1.9, .ranks_per_node = 16, .threads = 1}, /* under half */
        {.train_seconds = 4.0, .allreduce_seconds = 3.0, .ranks_per_node = 1, .threads = 16}, /* one rank a node */
        {.train_seconds = 0.0, .allreduce_seconds = 0.0, .ranks_per_node = 4, .threads = 1},  /* nothing measured */
    };
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        int spoke;
        char *text = hint_text(&quiet[i], &spoke);
        CU_ASSERT_EQUAL(spoke, 0);
        CU_ASSERT_STRING_EQUAL(text, "");
        free(text);
    }
}

int main(void) {
    CU_TestInfo tests[] = {
        {"the sum took most of the time: one line with the measured shares", test_most_of_the_time_in_the_sum},
        {"oversubscribed: a layout that fits the job's cores", test_oversubscribed},
        {"silent below half, with one rank a node, or with nothing measured", test_silent_otherwise},
        CU_TEST_INFO_NULL,
    };
    return nn_run_suite("layout hint", tests);
}
