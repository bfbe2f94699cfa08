/* The thread tuning (thread_tuning.h) on made-up step times: which steps run on how
 * many threads, which are timed, the choice and its margin, what runs between steps,
 * and the ranks' agreement (run on 1 and 2 ranks); and the tuner under it (tuner.h)
 * as the node's sum uses it: a fallback other than the first candidate. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <CUnit/CUnit.h>
#include <mpi.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_mpi.h"
#include "nn/thread_tuning.h"

/* 4 threads asked for: candidates 4, 2, 1; 3 warm-up steps, then 2 rounds of a block
 * per candidate, of 8 steps when a step takes 25/8 ms or more (as in most tests here) */
enum { THREADS = 4, STEPS = 3 + 2 * 3 * 8 };
static const char SCHEDULE[] = "444" "44444444" "22222222" "11111111" "44444444" "22222222" "11111111";

static int rank;

/* Seconds a step "takes" on 1, 2 and 4 threads. */
typedef struct { double on[THREADS + 1]; } step_times;

/* Runs `steps` steps through the tuning. Records each step's thread count in ran[]
 * (a digit) and checks that between steps OpenMP is back at the threads in use.
 * Returns the log. */
static char *run_steps(nn_thread_tuning *tt, int steps, step_times t, char *ran) {
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    for (int s = 0; s < steps; s++) {
        nn_thread_tuning_begin_step(tt);
        int threads = omp_get_max_threads();
        ran[s] = threads <= THREADS ? (char)('0' + threads) : '?';
        int in_use = nn_thread_tuning_end_step(tt, threads <= THREADS ? t.on[threads] : 1.0, false, MPI_COMM_WORLD, log);
        CU_ASSERT_EQUAL(omp_get_max_threads(), in_use);
    }
    ran[steps] = '\0';
    fclose(log);
    return text;
}

static int choice(step_times t) {
    nn_thread_tuning tt;
    char ran[16384];
    nn_thread_tuning_start(&tt, THREADS, true);
    free(run_steps(&tt, STEPS, t, ran));
    return tt.threads;
}

static void test_schedule_and_choice_of_one(void) {
    nn_thread_tuning tt;
    char ran[16384];
    nn_thread_tuning_start(&tt, THREADS, true);
    CU_ASSERT_EQUAL(omp_get_max_threads(), THREADS);
    CU_ASSERT_EQUAL(tt.tuner.total, -1); /* known after the warm-up */
    char *log = run_steps(&tt, STEPS + 5, (step_times){.on = {0, 4e-3, 6e-3, 0, 8e-3}}, ran);
    CU_ASSERT_EQUAL(tt.tuner.block, 8);
    CU_ASSERT_EQUAL(tt.tuner.total, STEPS);
    CU_ASSERT_EQUAL(strncmp(ran, SCHEDULE, STEPS), 0);
    CU_ASSERT_STRING_EQUAL(ran + STEPS, "11111");
    for (int c = 0; c < 3; c++) CU_ASSERT_EQUAL(tt.tuner.timed[c], 12); /* 2 rounds x the last 6 of 8 */
    CU_ASSERT_EQUAL(tt.threads, 1);
    CU_ASSERT_EQUAL(omp_get_max_threads(), 1);
    if (rank == 0)
        CU_ASSERT_STRING_EQUAL(log, "nntrain: mean step on 4, 2, 1 threads: 8000, 6000, 4000 us (blocks of 8 steps): "
                                    "training goes on with 1 thread per rank\n");
    free(log);
}

static void test_choice_in_between_or_all(void) {
    CU_ASSERT_EQUAL(choice((step_times){.on = {0, 16e-3, 8e-3, 0, 10e-3}}), 2);
    CU_ASSERT_EQUAL(choice((step_times){.on = {0, 16e-3, 8e-3, 0, 5e-3}}), 4);
}

/* More threads must be at least 3% faster than the best of fewer. */
static void test_margin(void) {
    CU_ASSERT_EQUAL(choice((step_times){.on = {0, 10e-3, 9.75e-3, 0, 9.75e-3}}), 1);
    CU_ASSERT_EQUAL(choice((step_times){.on = {0, 10e-3, 9.65e-3, 0, 9.65e-3}}), 2);
}

/* Blocks last at least 25 ms: fast steps make long blocks (here 1 ms: 25 steps). */
static void test_blocks_last_25_ms(void) {
    nn_thread_tuning tt;
    char ran[16384];
    nn_thread_tuning_start(&tt, THREADS, true);
    free(run_steps(&tt, 3 + 2 * 3 * 25, (step_times){.on = {0, 1e-3, 1e-3, 0, 1e-3}}, ran));
    CU_ASSERT_EQUAL(tt.tuner.block, 25);
    CU_ASSERT_EQUAL(tt.tuner.total, 3 + 2 * 3 * 25);
    CU_ASSERT_EQUAL(tt.tuner.timed[0], 2 * (25 - 25 / 4));
    CU_ASSERT(tt.tuner.done);
    CU_ASSERT_EQUAL(strspn(ran + 3, "4"), (size_t)25);
}

/* The mean, not the median: a count whose steps are mostly fast but now and then
 * very slow (a thread descheduled) loses. */
static void test_slow_steps_count(void) {
    nn_thread_tuning tt;
    nn_thread_tuning_start(&tt, 2, true);
    for (long s = 0; !tt.tuner.done; s++) {
        nn_thread_tuning_begin_step(&tt);
        double t = omp_get_max_threads() == 1 ? 10e-3 : s % 3 ? 6e-3 : 30e-3; /* all threads: mean 14 ms */
        nn_thread_tuning_end_step(&tt, t, false, MPI_COMM_WORLD, NULL);
    }
    CU_ASSERT_EQUAL(tt.threads, 1);
}

/* A step after other work is not timed: here every one-thread step is (with a time
 * that would win), so one thread cannot be chosen; with every step disturbed,
 * nothing is known and all the threads stay. */
static void test_disturbed_steps_are_not_timed(void) {
    for (int all_disturbed = 0; all_disturbed < 2; all_disturbed++) {
        nn_thread_tuning tt;
        nn_thread_tuning_start(&tt, THREADS, true);
        for (int s = 0; s < STEPS; s++) {
            nn_thread_tuning_begin_step(&tt);
            bool one = omp_get_max_threads() == 1;
            nn_thread_tuning_end_step(&tt, one ? 1e-6 : 4e-3, one || all_disturbed, MPI_COMM_WORLD, NULL);
        }
        CU_ASSERT_EQUAL(tt.tuner.timed[2], 0); /* the candidate 1 */
        CU_ASSERT_EQUAL(tt.tuner.timed[0], all_disturbed ? 0 : 12);
        CU_ASSERT_EQUAL(tt.threads, all_disturbed ? THREADS : 2);
        CU_ASSERT_EQUAL(omp_get_max_threads(), tt.threads);
    }
}

/* Off, or one thread asked for: every step on the threads asked for, no line. */
static void test_nothing_to_choose(void) {
    nn_thread_tuning tt;
    char ran[16384];
    nn_thread_tuning_start(&tt, THREADS, false);
    CU_ASSERT_EQUAL(tt.tuner.total, 0);
    char *log = run_steps(&tt, STEPS + 5, (step_times){.on = {0, 4e-3, 4e-3, 0, 8e-3}}, ran);
    CU_ASSERT_EQUAL(strspn(ran, "4"), (size_t)(STEPS + 5));
    CU_ASSERT_STRING_EQUAL(log, "");
    free(log);
    nn_thread_tuning_start(&tt, 1, true);
    nn_thread_tuning_begin_step(&tt);
    CU_ASSERT_EQUAL(omp_get_max_threads(), 1);
    CU_ASSERT_EQUAL(nn_thread_tuning_end_step(&tt, 1e-3, false, MPI_COMM_WORLD, NULL), 1);
}

/* 3 threads asked for: candidates 3 and 1. */
static void test_odd_count(void) {
    nn_thread_tuning tt;
    nn_thread_tuning_start(&tt, 3, true);
    CU_ASSERT_EQUAL(tt.n_counts, 2);
    CU_ASSERT(tt.counts[0] == 3 && tt.counts[1] == 1);
}

/* Different times on different ranks: every rank makes the slowest rank's choice.
 * Rank 0 is fastest on 4 threads, the others much slower there. */
static void test_ranks_agree(void) {
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int chosen = choice((step_times){.on = {0, 10e-3, 10e-3, 0, rank == 0 ? 5e-3 : 30e-3}});
    CU_ASSERT_EQUAL(chosen, size == 1 ? THREADS : 1);
}

/* Two candidates, the fallback (and preferred) one last, as the sums' tuning: the
 * warm-up runs it, NN_TUNE_BLOCK sets the block, the other is taken only when 3%
 * faster, and a run too short to finish keeps the fallback. */
static int tune_two(double first, double second, long steps, char *ran) {
    nn_tuner tu;
    nn_tuner_start(&tu, 2, 1, true);
    for (long s = 0; s < steps; s++) {
        int c = nn_tuner_candidate(&tu);
        ran[s] = (char)('0' + c);
        nn_tuner_end_step(&tu, c == 0 ? first : second, false, MPI_COMM_WORLD);
    }
    ran[steps] = '\0';
    return nn_tuner_candidate(&tu);
}

static void test_tuner_fallback_last(void) {
    char ran[64];
    setenv("NN_TUNE_BLOCK", "2", 1);
    CU_ASSERT_EQUAL(tune_two(9e-3, 10e-3, 13, ran), 0); /* 10% faster: taken */
    CU_ASSERT_STRING_EQUAL(ran, "111" "00" "11" "00" "11" "00");
    CU_ASSERT_EQUAL(tune_two(9.8e-3, 10e-3, 13, ran), 1); /* 2% faster: not enough */
    CU_ASSERT_EQUAL(tune_two(9e-3, 10e-3, 10, ran), 1);   /* not finished: the fallback */
    CU_ASSERT_STRING_EQUAL(ran, "111" "00" "11" "00" "1");
    unsetenv("NN_TUNE_BLOCK");
    nn_tuner tu;
    nn_tuner_start(&tu, 2, 1, false); /* off */
    CU_ASSERT(tu.done);
    CU_ASSERT_EQUAL(nn_tuner_candidate(&tu), 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    CU_TestInfo tests[] = {
        {"3 warm-up steps, 2 rounds of blocks of 8 on 4, 2, 1 threads; one chosen, said", test_schedule_and_choice_of_one},
        {"2 or 4 threads chosen when faster", test_choice_in_between_or_all},
        {"more threads must be at least 3% faster", test_margin},
        {"blocks last at least 25 ms", test_blocks_last_25_ms},
        {"the mean step time decides: occasional slow steps count", test_slow_steps_count},
        {"steps after other work are not timed", test_disturbed_steps_are_not_timed},
        {"tuning off or one thread: nothing changes, nothing said", test_nothing_to_choose},
        {"3 threads asked for: 3 and 1 tried", test_odd_count},
        {"the ranks agree on the slowest rank's times", test_ranks_agree},
        {"the tuner: a fallback last, NN_TUNE_BLOCK, the margin", test_tuner_fallback_last},
        CU_TEST_INFO_NULL};
    int failed = nn_run_suite_all_ranks("thread tuning", tests);
    MPI_Finalize();
    return failed;
}
