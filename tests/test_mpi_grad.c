/* Under mpiexec -n P: the gradient averaged over P ranks equals the single-process
 * gradient of the same global batch, every rank holds the same parameters after a
 * step, and an error on one rank reaches all of them. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_mpi.h"
#include "nn/comm.h"
#include "nn/conv_spec.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/exchange.h"
#include "nn/factor_sum.h"
#include "nn/train.h"
#include "test_util.h"

enum { BATCH = 30, IN = 20, CLASSES = 5 }; /* 30 does not divide evenly over 4 ranks */

static int rank, nranks;

/* The same global batch on every rank (same seed). */
static void make_batch(float *x, uint8_t *labels) {
    nn_rng rng;
    nn_rng_seed(&rng, 2024, 0, 0);
    for (int i = 0; i < BATCH * IN; i++) x[i] = nn_rng_uniform(&rng);
    for (int i = 0; i < BATCH; i++) labels[i] = (uint8_t)nn_rng_below(&rng, CLASSES);
}

/* Two models of one spec with the same initial parameters. */
static void create_pair(const nn_model_spec *spec, nn_model *a, nn_model *b) {
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(a, spec, BATCH, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_model_create(b, spec, BATCH, &err), NN_OK);
    nn_model_init(a, 5);
    nn_model_init(b, 5);
}

/* As the trainer does: this rank's slots of the global batch (dealt round-robin; ids,
 * if given, get each slot's index for the dropout key), a step begun with `stopper`
 * asking to stop, forward and backward straight into the exchange's buffer. */
static void local_backward(nn_model *local, nn_exchange *ex, const float *x, const uint8_t *labels, uint64_t *ids,
                           int stopper) {
    long first;
    int n = nn_local_batch(0, BATCH, rank, nranks, &first);
    uint8_t local_labels[BATCH];
    for (int i = 0; i < n; i++) {
        int slot = rank + i * nranks;
        memcpy(nn_model_input(local) + (size_t)i * IN, x + (size_t)slot * IN, IN * sizeof(float));
        local_labels[i] = labels[slot];
        if (ids) ids[i] = (uint64_t)slot;
    }
    nn_exchange_begin(ex);
    nn_exchange_set_control(ex, NN_CONTROL_STOP, rank == stopper);
    nn_model_forward_backward(local, local_labels, n, 1.0f / BATCH);
}

/* The ranks' gradients summed by the gradient exchange, in the given mode. */
/* conv: NULL, or a convolutional front (--layers syntax) for samples as 1x4x5 images */
static void check_distributed_gradient(nn_exchange_mode mode, nn_compress compress, float dropout, const char *conv) {
    nn_model_spec spec = {.n_widths = 4, .widths = {IN, 16, 12, CLASSES}, .activation = NN_ACT_TANH,
                          .input_dropout = dropout / 2, .dropout = dropout};
    nn_model local, whole;
    nn_error err;
    const int image[3] = {1, 4, 5};
    if (conv) {
        CU_ASSERT_EQUAL_FATAL(nn_spec_parse_conv("--layers", conv, &spec, &err), NN_OK);
        CU_ASSERT_EQUAL_FATAL(nn_spec_fit_image(&spec, image, IN, "test", "--layers", &err), NN_OK);
    }
    create_pair(&spec, &local, &whole);
    float x[BATCH * IN];
    uint8_t labels[BATCH];
    make_batch(x, labels);

    /* serial: the whole batch on one process (dropout masks keyed by each sample's
     * index in the batch, as the trainer keys them by the index in the training set) */
    uint64_t whole_ids[BATCH], local_ids[BATCH];
    for (int i = 0; i < BATCH; i++) whole_ids[i] = (uint64_t)i;
    whole.dropout_key = (nn_dropout_key){.seed = 8, .step = 3, .samples = whole_ids, .training = true};
    local.dropout_key = (nn_dropout_key){.seed = 8, .step = 3, .samples = local_ids, .training = true};
    memcpy(nn_model_input(&whole), x, sizeof x);
    nn_model_forward_backward(&whole, labels, BATCH, 1.0f / BATCH);

    /* distributed: this rank's slots of the batch, computed straight into the
     * exchange's buffer (shared memory in shm mode), each final slice handed over
     * (overlap mode), then one sum over the ranks */
    nn_exchange *ex = NULL;
    CU_ASSERT_EQUAL_FATAL(nn_exchange_create(&ex, MPI_COMM_WORLD, mode, compress, local.n_params, &err), NN_OK);
    nn_model_place_grads(&local, nn_exchange_grads(ex));
    local.slice_final = nn_exchange_slice_final;
    local.slice_final_ctx = ex;
    local_backward(&local, ex, x, labels, local_ids, nranks - 1); /* the last rank asks to stop */
    nn_exchange_finish(ex);
    CU_ASSERT_EQUAL(nn_exchange_control(ex, NN_CONTROL_STOP), 1.0f); /* every rank hears of it */
    CU_ASSERT_EQUAL(nn_exchange_control(ex, NN_CONTROL_NONFINITE), 0.0f);

    double diff = 0, norm = 0;
    for (size_t i = 0; i < whole.n_params; i++) {
        double d = (double)local.grads[i] - whole.grads[i];
        diff += d * d;
        norm += (double)whole.grads[i] * whole.grads[i];
    }
    double rel = sqrt(diff / norm);
    if (rank == 0)
        printf("\n  %d ranks, %s, %s%s: relative gradient error %.3g\n", nranks, nn_exchange_mode_name(mode),
               nn_compress_name(compress), conv ? ", conv" : "", rel);
    CU_ASSERT(norm > 0);
    if (compress == NN_COMPRESS_NONE) CU_ASSERT(rel < 1e-5);
    if (compress == NN_COMPRESS_BF16) CU_ASSERT(rel < 1e-2 && rel > 1e-6); /* compressed: close, not exact */

    /* the same SGD step everywhere leaves bit-identical parameters */
    nn_sgd sgd;
    CU_ASSERT_EQUAL_FATAL(nn_sgd_create(&sgd, local.n_params, 0.9f, 1e-4f, &err), NN_OK);
    nn_sgd_step(&sgd, local.params, local.grads, 0.1f);
    float *lo = malloc(local.n_params * sizeof(float)), *hi = malloc(local.n_params * sizeof(float));
    MPI_Allreduce(local.params, lo, (int)local.n_params, MPI_FLOAT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(local.params, hi, (int)local.n_params, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(memcmp(lo, local.params, local.n_params * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(hi, local.params, local.n_params * sizeof(float)), 0);
    free(lo);
    free(hi);
    nn_sgd_free(&sgd);
    nn_model_free(&local);
    nn_model_free(&whole);
    nn_exchange_free(ex);
}

static void test_gradient_mpi_allreduce(void) { check_distributed_gradient(NN_EXCHANGE_MPI, NN_COMPRESS_NONE, 0, NULL); }
static void test_gradient_shared_memory(void) { check_distributed_gradient(NN_EXCHANGE_SHM, NN_COMPRESS_NONE, 0, NULL); }
static void test_gradient_overlapped(void) { check_distributed_gradient(NN_EXCHANGE_OVERLAP, NN_COMPRESS_NONE, 0, NULL); }
/* one node: mpi and overlap compress the whole sum (shm has no stage between nodes) */
static void test_gradient_mpi_bf16(void) { check_distributed_gradient(NN_EXCHANGE_MPI, NN_COMPRESS_BF16, 0, NULL); }
static void test_gradient_overlapped_bf16(void) { check_distributed_gradient(NN_EXCHANGE_OVERLAP, NN_COMPRESS_BF16, 0, NULL); }
/* the same masks for the same samples whatever the rank count: else the sum of the
 * ranks' gradients would not be the serial one */
static void test_gradient_with_dropout(void) { check_distributed_gradient(NN_EXCHANGE_SHM, NN_COMPRESS_NONE, 0.3f, NULL); }

/* A convolutional network: conv, pool, conv, then dense layers (the convs' slices
 * handed over like the dense ones'), with and without dropout. */
#define CONV_NET "conv3x3x4p1,pool2,conv2x2x6,8,5"
static void test_gradient_conv_overlapped(void) { check_distributed_gradient(NN_EXCHANGE_OVERLAP, NN_COMPRESS_NONE, 0, CONV_NET); }
static void test_gradient_conv_dropout(void) { check_distributed_gradient(NN_EXCHANGE_SHM, NN_COMPRESS_NONE, 0.3f, CONV_NET); }

/* The trainer's step in shm mode: each rank of the node updates its share of the
 * parameters and momentum, then publishes it. Two steps (so the momentum matters)
 * must leave parameters bit-identical to the whole update on every rank, the
 * gathered momentum too; a non-finite weight in one rank's share reaches every rank.
 * `shared`: the split model keeps its parameters in the node's one shared copy;
 * 2: its momentum too, and the step is the chunked sum with each chunk's update
 * (nn_exchange_finish_update), chunks taken by whichever rank is free; 3: the same
 * with the dense weight gradients made from the ranks' factors (factor_sum.h); 4: the
 * same, the factor sum made at one thread a rank and its items then taken by three. */
static float fused_lr = 0.1f;
static nn_sgd *fused_sgd;
static unsigned fused_step(void *ctx, const float *sums, size_t offset, size_t count) {
    return (unsigned)nn_sgd_step_sums(fused_sgd, ctx, sums, fused_lr, offset, count);
}

static void check_update_split(int shared) {
    nn_model_spec spec = {.n_widths = 4, .widths = {IN, 16, 12, CLASSES}, .activation = NN_ACT_TANH};
    nn_model whole, split;
    nn_error err;
    create_pair(&spec, &whole, &split);
    float x[BATCH * IN];
    uint8_t labels[BATCH];
    make_batch(x, labels);
    nn_exchange *ex = NULL;
    CU_ASSERT_EQUAL_FATAL(nn_exchange_create(&ex, MPI_COMM_WORLD, NN_EXCHANGE_SHM, NN_COMPRESS_NONE, whole.n_params, &err),
                          NN_OK);
    nn_model_place_grads(&whole, nn_exchange_grads(ex));
    nn_model_place_grads(&split, nn_exchange_grads(ex));
    if (shared) {
        setenv("NN_NODE_PARAMS", "shared", 1); /* by default only from 3 ranks a node */
        float *copy = nn_exchange_share_params(ex, split.params);
        unsetenv("NN_NODE_PARAMS");
        if (nranks > 1) CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
        if (copy) nn_model_place_params(&split, copy);
        CU_ASSERT_EQUAL(memcmp(split.params, whole.params, whole.n_params * sizeof(float)), 0);
    }
    nn_sgd sgd_whole, sgd_split;
    CU_ASSERT_EQUAL_FATAL(nn_sgd_create(&sgd_whole, whole.n_params, 0.9f, 1e-4f, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_sgd_create(&sgd_split, split.n_params, 0.9f, 1e-4f, &err), NN_OK);
    size_t offset, count;
    nn_exchange_owned(ex, &offset, &count);
    if (nranks > 1) CU_ASSERT(count < whole.n_params); /* the node's ranks really split it */
    int fused = 0;
    nn_factor_sum *factors = NULL;
    if (shared >= 2) {
        float *v = nn_exchange_share_velocity(ex, sgd_split.velocity);
        if (nranks > 1) CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        if (v) nn_sgd_place_velocity(&sgd_split, v);
        fused = nn_exchange_fused(ex);
        fused_sgd = &sgd_split;
    }
    int saved_threads = omp_get_max_threads();
    if (shared >= 3) {
        if (shared == 4) omp_set_num_threads(1);
        CU_ASSERT_EQUAL_FATAL(nn_factor_sum_create(&factors, MPI_COMM_WORLD, &split, &err), NN_OK);
        if (nranks > 1) CU_ASSERT_PTR_NOT_NULL_FATAL(factors);
        if (factors) CU_ASSERT(nn_factor_sum_items(factors) >= 3); /* a block of columns or more a layer */
        if (shared == 4) omp_set_num_threads(3); /* more threads than at creation take the items */
    }
    long first;
    int rows = nn_local_batch(0, BATCH, rank, nranks, &first);
    for (int step = 0; step < 2; step++) {
        local_backward(&whole, ex, x, labels, NULL, 0);
        nn_exchange_finish(ex);
        CU_ASSERT_EQUAL(nn_sgd_step(&sgd_whole, whole.params, whole.grads, 0.1f), 0);

        local_backward(&split, ex, x, labels, NULL, 0);
        int nonfinite = 0;
        if (factors) {
            nn_factor_sum_rows(factors, rows);
            nn_exchange_finish_update_with(ex, nn_factor_sum_work(factors, fused_step, split.params), fused_step,
                                           split.params, &nonfinite);
        } else if (fused) {
            nn_exchange_finish_update(ex, fused_step, split.params, &nonfinite);
        } else {
            nn_exchange_finish_owned(ex);
            nonfinite = nn_sgd_step_range(&sgd_split, split.params, split.grads, 0.1f, offset, count);
            nn_exchange_publish(ex, split.params, &nonfinite);
        }
        CU_ASSERT_EQUAL(nonfinite, 0);
        CU_ASSERT_EQUAL(nn_exchange_control(ex, NN_CONTROL_STOP), 1.0f); /* every rank hears rank 0 */
        CU_ASSERT_EQUAL(memcmp(split.params, whole.params, whole.n_params * sizeof(float)), 0);
    }
    nn_exchange_gather(ex, sgd_split.velocity);
    CU_ASSERT_EQUAL(memcmp(sgd_split.velocity, sgd_whole.velocity, whole.n_params * sizeof(float)), 0);

    /* the last rank's share goes bad: every rank must stop */
    local_backward(&split, ex, x, labels, NULL, 0);
    int nonfinite = 0;
    if (factors) { /* a NaN in the last rank's factors (the output gradient rows): every rank hears */
        if (rank == nranks - 1) split.grad_acts[split.n_layers][0] = NAN;
        nn_factor_sum_rows(factors, rows);
        nn_exchange_finish_update_with(ex, nn_factor_sum_work(factors, fused_step, split.params), fused_step,
                                       split.params, &nonfinite);
    } else if (fused) { /* a NaN in the last rank's gradient: whoever sums it, every rank hears */
        if (rank == nranks - 1) split.grads[whole.n_params / 2] = NAN;
        nn_exchange_finish_update(ex, fused_step, split.params, &nonfinite);
    } else {
        nn_exchange_finish_owned(ex);
        if (rank == nranks - 1 && count > 0) split.grads[offset] = NAN;
        nonfinite = nn_sgd_step_range(&sgd_split, split.params, split.grads, 0.1f, offset, count);
        nn_exchange_publish(ex, split.params, &nonfinite);
    }
    int everywhere = 0;
    MPI_Allreduce(&nonfinite, &everywhere, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(everywhere, 1);

    omp_set_num_threads(saved_threads);
    nn_sgd_free(&sgd_whole);
    nn_sgd_free(&sgd_split);
    nn_factor_sum_free(factors);
    nn_model_free(&whole);
    nn_model_free(&split);
    nn_exchange_free(ex);
}

static void test_update_split_over_the_node(void) { check_update_split(0); }
static void test_update_on_shared_params(void) { check_update_split(1); }
static void test_update_chunked_over_the_node(void) { check_update_split(2); }
static void test_update_from_factors(void) { check_update_split(3); }
static void test_update_from_factors_more_threads(void) { check_update_split(4); }

static void test_error_on_one_rank_reaches_all(void) {
    nn_error err = {0};
    int last = nranks - 1;
    int status = rank == last ? nn_fail(&err, NN_ERR_INPUT, "bad thing on rank %d", rank) : NN_OK;
    CU_ASSERT_EQUAL(nn_comm_agree(MPI_COMM_WORLD, status, &err), NN_ERR_INPUT);
    char expect[64];
    snprintf(expect, sizeof expect, "bad thing on rank %d", last);
    CU_ASSERT_STRING_EQUAL(err.msg, expect);
    /* the worst status wins; the lowest failing rank's message is kept */
    status = rank == 0 ? nn_fail(&err, NN_ERR_INPUT, "input") : rank == last ? nn_fail(&err, NN_ERR_RUNTIME, "runtime") : NN_OK;
    CU_ASSERT_EQUAL(nn_comm_agree(MPI_COMM_WORLD, status, &err), NN_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "input");
    CU_ASSERT_EQUAL(nn_comm_agree(MPI_COMM_WORLD, NN_OK, &err), NN_OK);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    CU_TestInfo tests[] = {
        {"MPI_Allreduce: averaged gradient equals the serial gradient", test_gradient_mpi_allreduce},
        {"shared-memory sum: averaged gradient equals the serial gradient", test_gradient_shared_memory},
        {"overlapped per-layer sums: averaged gradient equals the serial gradient", test_gradient_overlapped},
        {"MPI_Allreduce in bf16: close to the serial gradient, not equal", test_gradient_mpi_bf16},
        {"with dropout: the ranks draw the serial run's masks (keyed by sample)", test_gradient_with_dropout},
        {"a conv network, overlapped sums: averaged gradient equals the serial gradient", test_gradient_conv_overlapped},
        {"a conv network with dropout, shared-memory sum: the same", test_gradient_conv_dropout},
        {"the SGD step split over the node's ranks equals the whole step", test_update_split_over_the_node},
        {"... also on the node's one shared copy of the parameters", test_update_on_shared_params},
        {"... and the chunked sum with each chunk's update (the momentum shared too)", test_update_chunked_over_the_node},
        {"... and the dense weight gradients from the ranks' factors (bit-identical)", test_update_from_factors},
        {"... the same, with more threads a rank than when the factor sum was made", test_update_from_factors_more_threads},
        {"overlapped sums in bf16: close to the serial gradient, not equal", test_gradient_overlapped_bf16},
        {"an error on one rank reaches every rank", test_error_on_one_rank_reaches_all},
        CU_TEST_INFO_NULL};
    int failed = nn_run_suite_all_ranks("mpi gradient", tests);
    MPI_Finalize();
    return failed;
}
