/* The thread tuning (thread_tuning.h) on made-up step times: which steps run on
 * one thread, which are timed, the choice and its margin, what runs between steps,
 * and the ranks' agreement (run on 1 and 2 ranks). */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <CUnit/CUnit.h>
#include <mpi.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_mpi.h"
#include "nn/thread_tuning.h"

enum { THREADS = 4, STEPS = 35 }; /* 3 warm-up steps, 4 blocks of 8 */

static int rank;

/* Runs `steps` steps through the tuning; a step on one thread "takes" one_s, on all
 * all_s. Records each step's thread count in ran[] ('A' all, '1' one) and checks that
 * between steps OpenMP is back at the threads in use. Returns the log. */
static char *run_steps(nn_thread_tuning *tt, int steps, double one_s, double all_s, char *ran) {
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    for (int s = 0; s < steps; s++) {
        nn_thread_tuning_begin_step(tt);
        int threads = omp_get_max_threads();
        ran[s] = threads == THREADS ? 'A' : threads == 1 ? '1' : '?';
        int in_use = nn_thread_tuning_end_step(tt, threads == 1 ? one_s : all_s, false, MPI_COMM_WORLD, log);
        CU_ASSERT_EQUAL(omp_get_max_threads(), in_use);
    }
    ran[steps] = '\0';
    fclose(log);
    return text;
}

static void test_schedule_and_choice_of_one(void) {
    nn_thread_tuning tt;
    char ran[64];
    nn_thread_tuning_start(&tt, THREADS, true);
    CU_ASSERT_EQUAL(omp_get_max_threads(), THREADS);
    char *log = run_steps(&tt, STEPS + 5, 1e-3, 2e-3, ran);
    CU_ASSERT_STRING_EQUAL(ran, "AAA" "AAAAAAAA" "11111111" "AAAAAAAA" "11111111" "11111");
    CU_ASSERT_EQUAL(tt.timed[NN_TUNE_ALL], 12);
    CU_ASSERT_EQUAL(tt.timed[NN_TUNE_ONE], 12);
    CU_ASSERT_EQUAL(tt.threads, 1);
    CU_ASSERT_EQUAL(omp_get_max_threads(), 1);
    if (rank == 0)
        CU_ASSERT_PTR_NOT_NULL(strstr(log, "a step took 2000 us on 4 threads and 1000 us on one "
                                           "(medians of 12 and 12 steps): training goes on with one thread per rank"));
    free(log);
}

static void test_choice_of_all(void) {
    nn_thread_tuning tt;
    char ran[64];
    nn_thread_tuning_start(&tt, THREADS, true);
    free(run_steps(&tt, STEPS + 2, 2e-3, 1e-3, ran));
    CU_ASSERT_STRING_EQUAL(ran + STEPS, "AA");
    CU_ASSERT_EQUAL(tt.threads, THREADS);
}

/* All the threads must be at least 3% faster. */
static void test_margin(void) {
    nn_thread_tuning tt;
    char ran[64];
    nn_thread_tuning_start(&tt, THREADS, true);
    free(run_steps(&tt, STEPS, 1.000e-3, 0.975e-3, ran));
    CU_ASSERT_EQUAL(tt.threads, 1);
    nn_thread_tuning_start(&tt, THREADS, true);
    free(run_steps(&tt, STEPS, 1.000e-3, 0.965e-3, ran));
    CU_ASSERT_EQUAL(tt.threads, THREADS);
}

/* A step after other work is not timed: here every one-thread step is, so nothing is
 * known of one thread and all the threads stay. */
static void test_disturbed_steps_are_not_timed(void) {
    nn_thread_tuning tt;
    nn_thread_tuning_start(&tt, THREADS, true);
    for (int s = 0; s < STEPS; s++) {
        nn_thread_tuning_begin_step(&tt);
        bool one = omp_get_max_threads() == 1;
        nn_thread_tuning_end_step(&tt, one ? 1e-6 : 1e-3, one, MPI_COMM_WORLD, NULL);
    }
    CU_ASSERT_EQUAL(tt.timed[NN_TUNE_ONE], 0);
    CU_ASSERT_EQUAL(tt.timed[NN_TUNE_ALL], 12);
    CU_ASSERT_EQUAL(tt.threads, THREADS);
    CU_ASSERT_EQUAL(omp_get_max_threads(), THREADS);
}

/* Off, or one thread asked for: every step on the threads asked for, no line. */
static void test_nothing_to_choose(void) {
    nn_thread_tuning tt;
    char ran[64];
    nn_thread_tuning_start(&tt, THREADS, false);
    char *log = run_steps(&tt, STEPS + 5, 1e-3, 2e-3, ran);
    CU_ASSERT_EQUAL(strspn(ran, "A"), (size_t)(STEPS + 5));
    CU_ASSERT_STRING_EQUAL(log, "");
    free(log);
    nn_thread_tuning_start(&tt, 1, true);
    nn_thread_tuning_begin_step(&tt);
    CU_ASSERT_EQUAL(omp_get_max_threads(), 1);
    CU_ASSERT_EQUAL(nn_thread_tuning_end_step(&tt, 1e-3, false, MPI_COMM_WORLD, NULL), 1);
}

/* Different times on different ranks: every rank makes the slowest rank's choice.
 * Rank 0 is faster on all the threads, the others much slower there. */
static void test_ranks_agree(void) {
    nn_thread_tuning tt;
    char ran[64];
    nn_thread_tuning_start(&tt, THREADS, true);
    free(run_steps(&tt, STEPS, 1e-3, rank == 0 ? 0.5e-3 : 3e-3, ran));
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CU_ASSERT_EQUAL(tt.threads, size == 1 ? THREADS : 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    CU_TestInfo tests[] = {
        {"3 warm-up steps, blocks of 8 all/one/all/one; one thread chosen, said", test_schedule_and_choice_of_one},
        {"all the threads chosen when faster", test_choice_of_all},
        {"all the threads must be at least 3% faster", test_margin},
        {"steps after other work are not timed", test_disturbed_steps_are_not_timed},
        {"tuning off or one thread: nothing changes, nothing said", test_nothing_to_choose},
        {"the ranks agree on the slowest rank's times", test_ranks_agree},
        CU_TEST_INFO_NULL};
    int failed = nn_run_suite_all_ranks("thread tuning", tests);
    MPI_Finalize();
    return failed;
}
