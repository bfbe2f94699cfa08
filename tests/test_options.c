/* nntrain's command line and environment knobs, and how a global batch is dealt out
 * to the ranks. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_run.h"
#include "nn/env.h"
#include "nn/options.h"
#include "nn/train.h"

#define ARGV(...) (char *[]){"nntrain", __VA_ARGS__, NULL}
#define ARGC(...) ((int)(sizeof((char *[]){"nntrain", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(opt, err, ...) nn_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), opt, err)

static void test_defaults(void) {
    nn_train_options o;
    nn_error e;
    CU_ASSERT_EQUAL(nn_options_parse(1, (char *[]){"nntrain", NULL}, &o, &e), NN_OK);
    CU_ASSERT_STRING_EQUAL(o.run.data, "data/mnist.h5");
    CU_ASSERT_EQUAL(o.run.spec.n_widths, 4);
    CU_ASSERT(o.run.spec.widths[0] == 784 && o.run.spec.widths[1] == 50 && o.run.spec.widths[2] == 100 && o.run.spec.widths[3] == 10);
    CU_ASSERT_EQUAL(o.run.spec.activation, NN_ACT_SIGMOID);
    CU_ASSERT_EQUAL(o.run.epochs, 15);
    CU_ASSERT_EQUAL(o.run.batch_size, 100);
    CU_ASSERT_EQUAL(o.run.seed, 1);
    CU_ASSERT_EQUAL(o.run.train_limit, 0);
    CU_ASSERT_EQUAL(o.given, 0); /* nothing given: a resume takes everything from the checkpoint */
    CU_ASSERT_EQUAL(o.exchange, NN_EXCHANGE_SHM);
    CU_ASSERT_DOUBLE_EQUAL(o.timeout, 300.0, 1e-9); /* the watchdog is on by default */
    CU_ASSERT_EQUAL(o.thread_tuning, 1);
    CU_ASSERT_DOUBLE_EQUAL(o.run.lr, 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(o.run.weight_decay, 1e-4, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(o.run.momentum, 0.9, 1e-7);
    CU_ASSERT_EQUAL(o.run.schedule, NN_SCHEDULE_COSINE);
}

static void test_all_options(void) {
    nn_train_options o;
    nn_error e;
    CU_ASSERT_EQUAL(PARSE(&o, &e, "--data", "x.h5", "--layers=784,800,800,10", "--activation", "relu",
                          "--epochs", "20", "--batch-size=128", "--lr", "0.05", "--momentum", "0.5",
                          "--weight-decay", "1e-4", "--seed", "7", "--train-limit", "5000", "--threads", "2",
                          "--metrics", "m.jsonl", "--lr-schedule", "constant", "--loss", "mse",
                          "--checkpoint", "c.h5", "--checkpoint-every", "50", "--resume", "r.h5",
                          "--allreduce", "overlap", "--thread-tuning", "off"), NN_OK);
    CU_ASSERT_EQUAL(o.thread_tuning, 0);
    CU_ASSERT_STRING_EQUAL(o.checkpoint, "c.h5");
    CU_ASSERT_STRING_EQUAL(o.resume, "r.h5");
    CU_ASSERT_EQUAL(o.checkpoint_every, 50);
    CU_ASSERT_EQUAL(o.exchange, NN_EXCHANGE_OVERLAP);
    CU_ASSERT(o.given & NN_GIVEN_LAYERS && o.given & NN_GIVEN_LR && o.given & NN_GIVEN_SEED);
    CU_ASSERT(o.given & NN_GIVEN_DATA && o.given & NN_GIVEN_TRAIN_LIMIT);
    CU_ASSERT_STRING_EQUAL(o.run.data, "x.h5");
    CU_ASSERT_STRING_EQUAL(o.metrics, "m.jsonl");
    CU_ASSERT(o.run.spec.n_widths == 4 && o.run.spec.widths[1] == 800);
    CU_ASSERT_EQUAL(o.run.spec.activation, NN_ACT_RELU);
    CU_ASSERT_EQUAL(o.run.spec.loss, NN_LOSS_MSE);
    CU_ASSERT(o.run.epochs == 20 && o.run.batch_size == 128 && o.run.seed == 7 && o.run.train_limit == 5000 && o.threads == 2);
    CU_ASSERT_DOUBLE_EQUAL(o.run.lr, 0.05, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(o.run.momentum, 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(o.run.weight_decay, 1e-4, 1e-9);
    CU_ASSERT_EQUAL(o.run.schedule, NN_SCHEDULE_CONSTANT);
    CU_ASSERT_EQUAL(PARSE(&o, &e, "--thread-tuning", "on"), NN_OK);
    CU_ASSERT_EQUAL(o.thread_tuning, 1);
    CU_ASSERT_EQUAL(PARSE(&o, &e, "--help"), NN_OK);
    CU_ASSERT(o.show_help);
    CU_ASSERT_EQUAL(PARSE(&o, &e, "--version"), NN_OK);
    CU_ASSERT(o.show_version);
}

/* Each bad command line is rejected with a message containing `expect`. */
static void expect_error(int argc, char **argv, const char *expect) {
    nn_train_options o;
    nn_error e = {0};
    int rc = nn_options_parse(argc, argv, &o, &e);
    CU_ASSERT_EQUAL(rc, NN_ERR_INPUT);
    if (rc == NN_ERR_INPUT && !strstr(e.msg, expect)) printf("\n  message '%s' lacks '%s'\n", e.msg, expect);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, expect));
}
#define EXPECT_ERROR(expect, ...) expect_error(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), expect)

static void test_bad_options(void) {
    EXPECT_ERROR("unknown option '--bogus'", "--bogus", "1");
    EXPECT_ERROR("unknown option '--bogus'", "--bogus");
    /* a prefix of several options: named as such, with the options it could be */
    EXPECT_ERROR("ambiguous option '--check': could be --checkpoint, --checkpoint-every", "--check", "ck.h5");
    EXPECT_ERROR("ambiguous option '--check': could be", "--check=ck.h5");
    EXPECT_ERROR("--deterministic takes no value", "--deterministic=1"); /* it said "unknown option '-\x1e'" */
    EXPECT_ERROR("--epochs needs a value", "--epochs");
    EXPECT_ERROR("--epochs 'ten': not an integer", "--epochs", "ten");
    EXPECT_ERROR("--epochs '3x': not an integer", "--epochs", "3x");
    EXPECT_ERROR("--epochs 0: must be in", "--epochs", "0");
    EXPECT_ERROR("--batch-size '': not an integer", "--batch-size=");
    EXPECT_ERROR("--batch-size -5: must be in", "--batch-size", "-5");
    EXPECT_ERROR("--lr 'fast': not a finite number", "--lr", "fast");
    EXPECT_ERROR("--lr 'nan': not a finite number", "--lr", "nan");
    EXPECT_ERROR("--lr 0: must be positive", "--lr", "0");
    EXPECT_ERROR("--momentum 1: must be in", "--momentum", "1");
    EXPECT_ERROR("--weight-decay -1: must be in", "--weight-decay", "-1");
    EXPECT_ERROR("--activation 'swish'", "--activation", "swish");
    EXPECT_ERROR("--layers '784'", "--layers", "784");
    EXPECT_ERROR("--layers '784,,10'", "--layers", "784,,10");
    EXPECT_ERROR("--layers '784,0,10'", "--layers", "784,0,10");
    EXPECT_ERROR("--layers '784;10'", "--layers", "784;10");
    EXPECT_ERROR("--data: empty path", "--data", "");
    EXPECT_ERROR("unexpected argument 'train'", "train");
    EXPECT_ERROR("--threads 0: must be in", "--threads", "0");
    EXPECT_ERROR("--timeout -1: must be in", "--timeout", "-1");
    EXPECT_ERROR("--timeout 'soon': not a finite number", "--timeout", "soon");
    EXPECT_ERROR("--timeout 4.5: must be 0 (no watchdog) or at least 5 s", "--timeout", "4.5"); /* fires on start-up */
    EXPECT_ERROR("--timeout 1e-30: must be 0", "--timeout", "1e-30");
    EXPECT_ERROR("--allreduce 'ring'", "--allreduce", "ring");
    EXPECT_ERROR("--thread-tuning 'yes': expected on or off", "--thread-tuning", "yes");
    EXPECT_ERROR("--checkpoint-every needs --checkpoint", "--checkpoint-every", "10");
    EXPECT_ERROR("--checkpoint-every 0: must be in", "--checkpoint", "c.h5", "--checkpoint-every", "0");
}

/* A checkpoint's stored settings go through the command line's own checks. */
static void test_run_setting_parse(void) {
    nn_run_config run;
    nn_run_config_defaults(&run);
    nn_error e = {0};
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "lr", "/optimizer/lr", "0.25", &e), NN_OK);
    CU_ASSERT_DOUBLE_EQUAL(run.lr, 0.25, 1e-7);
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "compress", "/options/compress", "bf16", &e), NN_OK);
    CU_ASSERT_EQUAL(run.compress, NN_COMPRESS_BF16);
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "lr", "/optimizer/lr", "-1", &e), NN_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(e.msg, "/optimizer/lr -1: must be in [0, 100]");
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "lr", "/optimizer/lr", "0", &e), NN_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(e.msg, "/optimizer/lr 0: must be positive");
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "batch-size", "/options/batch_size", "4294967396", &e), NN_ERR_INPUT);
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "momentum", "/optimizer/momentum", "nan", &e), NN_ERR_INPUT);
    CU_ASSERT_EQUAL(nn_run_setting_parse(&run, "metrics", "/options/metrics", "m.jsonl", &e), NN_ERR_INPUT);
    CU_ASSERT_DOUBLE_EQUAL(run.lr, 0.25, 1e-7); /* a refused value changes nothing */
    /* 0 for --validation and --train-limit: none held out, all samples (the defaults) */
    nn_train_options o;
    CU_ASSERT_EQUAL(PARSE(&o, &e, "--validation", "0", "--train-limit", "0"), NN_OK);
    CU_ASSERT(o.run.validation == 0 && o.run.train_limit == 0);
}

static void test_local_batches_partition_the_global_batch(void) {
    const int batches[] = {1, 7, 100, 128, 101};
    for (int bi = 0; bi < 5; bi++)
        for (int P = 1; P <= 8; P++) {
            int B = batches[bi];
            if (B < P) continue;
            long totals[8] = {0};
            for (long s = 0; s < 50; s++) {
                int sum = 0;
                for (int r = 0; r < P; r++) {
                    long first;
                    int n = nn_local_batch(s, B, r, P, &first);
                    CU_ASSERT(n >= B / P && n <= (B + P - 1) / P); /* balanced */
                    CU_ASSERT_EQUAL(first, totals[r]);           /* consecutive in the rank's order */
                    totals[r] += n;
                    sum += n;
                }
                CU_ASSERT_EQUAL(sum, B);
            }
            for (int r = 1; r < P; r++) CU_ASSERT(labs(totals[r] - totals[0]) <= 1); /* even shares */
        }
}

/* The knobs: a count's value, or the fallback where unset, empty or bad; the check
 * names the first bad one and the values it takes. */
static void test_environment_knobs(void) {
    nn_error err = {0};
    unsetenv("NN_NODE_SUM");
    setenv("NN_FACTOR_ITEMS", "12", 1);
    CU_ASSERT_EQUAL(nn_env_count("NN_FACTOR_ITEMS", 6), 12);
    CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
    const char *bad[] = {"12x", " 12", "+12", "0", "1000001", "99999999999999999999", "-3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("NN_FACTOR_ITEMS", bad[i], 1);
        CU_ASSERT_EQUAL(nn_env_count("NN_FACTOR_ITEMS", 6), 6);
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_ERR_INPUT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "NN_FACTOR_ITEMS="));
    }
    setenv("NN_FACTOR_ITEMS", "", 1); /* empty: unset */
    CU_ASSERT_EQUAL(nn_env_count("NN_FACTOR_ITEMS", 6), 6);
    CU_ASSERT_PTR_NULL(nn_env("NN_FACTOR_ITEMS"));
    CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
    setenv("NN_NODE_SUM", "factor", 1);
    CU_ASSERT_EQUAL(nn_env_check(&err), NN_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "environment: NN_NODE_SUM=factor: expected static, chunked, early, factors or auto");
    setenv("NN_NODE_SUM", "factorsx", 1); /* a word's prefix or extension is not the word */
    CU_ASSERT_EQUAL(nn_env_check(&err), NN_ERR_INPUT);
    setenv("NN_NODE_SUM", "factors", 1);
    CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
    CU_ASSERT_STRING_EQUAL(nn_env("NN_NODE_SUM"), "factors");
    unsetenv("NN_NODE_SUM");
    unsetenv("NN_FACTOR_ITEMS");
}

/* A knob's name misspelt stops the run with the knob it meant; names far from every
 * knob (the scripts' own) and empty ones pass. */
static void test_misspelt_knob_names(void) {
    nn_error err = {0};
    const char *slips[][2] = {{"NN_NODESUM", "NN_NODE_SUM"},         {"nn_node_sum", "NN_NODE_SUM"},
                              {"NN_NDOE_SUM", "NN_NODE_SUM"},        {"NN_FACTOR_ITEM", "NN_FACTOR_ITEMS"},
                              {"NN_NODE_PARAM", "NN_NODE_PARAMS"},   {"NNTRAIN_STOP_AT_STEPS", "NNTRAIN_STOP_AT_STEP"},
                              {"N_FACTOR_MIN_TILES", "NN_FACTOR_MIN_TILE"}};
    for (size_t i = 0; i < sizeof slips / sizeof slips[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "environment: %s: no such variable; did you mean %s?", slips[i][0], slips[i][1]);
        setenv(slips[i][0], "1", 1);
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_ERR_INPUT);
        CU_ASSERT_STRING_EQUAL(err.msg, want);
        setenv(slips[i][0], "", 1); /* empty: unset, as for the knobs themselves */
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
        unsetenv(slips[i][0]);
    }
    const char *others[] = {"NN_SKIP_MEMCHECK", "NN_REQUIRE_SLURM", "NN_SUM", "NN_NODE_SUM_X_Y_Z", "NODE_SUM"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        setenv(others[i], "1", 1);
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
        unsetenv(others[i]);
    }
}

/* OMP_NUM_THREADS, which OpenMP's runtime would quietly ignore ("abc", "0") or obey
 * (5000 threads): a count, or a list of counts, the first in --threads' range. Its
 * real neighbours (KMP_NUM_THREADS, GOMP_NUM_THREADS) are not taken for slips. */
static void test_omp_num_threads(void) {
    nn_error err = {0};
    const char *saved = getenv("OMP_NUM_THREADS");
    char kept[64] = "";
    if (saved) snprintf(kept, sizeof kept, "%s", saved);
    const char *good[] = {"1", "2", "1024", "", "8,1", " 4 ", "4 , 2", "16,16,16", "4\n", "\t4,\t2"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("OMP_NUM_THREADS", good[i], 1);
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
    }
    const char *bad[] = {"0", "abc", "-3", "+3", "2x", "4,", ",4", "4,0", "4;2",
                         "1025", "5000", "99999999999999999999", "4,5000", "1,99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "environment: OMP_NUM_THREADS=%s: %s", bad[i],
                 i < 9 ? "expected a thread count (1..1024) or a list of counts" : "");
        setenv("OMP_NUM_THREADS", bad[i], 1);
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_ERR_INPUT);
        CU_ASSERT_NSTRING_EQUAL(err.msg, want, strlen(want));
        if (i >= 9) CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ": more than 1024 threads"));
    }
    unsetenv("OMP_NUM_THREADS");
    const char *neighbours[] = {"KMP_NUM_THREADS", "GOMP_NUM_THREADS", "OMP_NUM_THREAD"};
    for (size_t i = 0; i < sizeof neighbours / sizeof neighbours[0]; i++) {
        setenv(neighbours[i], "4", 1);
        CU_ASSERT_EQUAL(nn_env_check(&err), NN_OK);
        unsetenv(neighbours[i]);
    }
    if (saved) setenv("OMP_NUM_THREADS", kept, 1);
}

/* A resume takes each setting that may change from the command line where it was
 * given (naming the change), and from the checkpoint where it was not: a setting
 * reported as changed but not taken would train on with the old value. */
static void test_resume_merge(void) {
    nn_run_config saved, cli, out;
    nn_run_config_defaults(&saved);
    snprintf(saved.data, sizeof saved.data, "first.h5");
    cli = saved;
    snprintf(cli.data, sizeof cli.data, "second.h5");
    cli.epochs = saved.epochs + 5;
    cli.lr = 0.125f, cli.momentum = 0.5f, cli.weight_decay = 0.25f;
    cli.spec.dropout = 0.375f, cli.spec.input_dropout = 0.0625f, cli.max_norm = 3.0f, cli.shift = 2;
    cli.warmup_epochs = 1.5f, cli.momentum_end = 0.99f, cli.momentum_ramp_epochs = 2.5f;
    cli.schedule = NN_SCHEDULE_CONSTANT, cli.compress = NN_COMPRESS_BF16;
    unsigned changeable = NN_GIVEN_DATA | NN_GIVEN_EPOCHS | NN_GIVEN_LR | NN_GIVEN_MOMENTUM | NN_GIVEN_WEIGHT_DECAY |
                          NN_GIVEN_DROPOUT | NN_GIVEN_INPUT_DROPOUT | NN_GIVEN_MAX_NORM | NN_GIVEN_SHIFT |
                          NN_GIVEN_WARMUP | NN_GIVEN_MOMENTUM_END | NN_GIVEN_MOMENTUM_RAMP | NN_GIVEN_SCHEDULE |
                          NN_GIVEN_COMPRESS;
    char changes[1024];
    nn_error err;
    for (int given = 0; given < 2; given++) { /* none given, then all */
        const nn_run_config *want = given ? &cli : &saved;
        CU_ASSERT_EQUAL_FATAL(nn_run_config_resume(&cli, given ? changeable : 0, &saved, "ck.h5", &out, changes,
                                                   sizeof changes, &err), NN_OK);
        CU_ASSERT_STRING_EQUAL(out.data, want->data);
        CU_ASSERT_EQUAL(out.epochs, want->epochs);
        CU_ASSERT_EQUAL(out.lr, want->lr);
        CU_ASSERT_EQUAL(out.momentum, want->momentum);
        CU_ASSERT_EQUAL(out.weight_decay, want->weight_decay);
        CU_ASSERT_EQUAL(out.spec.dropout, want->spec.dropout);
        CU_ASSERT_EQUAL(out.spec.input_dropout, want->spec.input_dropout);
        CU_ASSERT_EQUAL(out.max_norm, want->max_norm);
        CU_ASSERT_EQUAL(out.shift, want->shift);
        CU_ASSERT_EQUAL(out.warmup_epochs, want->warmup_epochs);
        CU_ASSERT_EQUAL(out.momentum_end, want->momentum_end);
        CU_ASSERT_EQUAL(out.momentum_ramp_epochs, want->momentum_ramp_epochs);
        CU_ASSERT_EQUAL(out.schedule, want->schedule);
        CU_ASSERT_EQUAL(out.compress, want->compress);
        if (!given) CU_ASSERT_STRING_EQUAL(changes, "");
    }
    const char *said[] = {"epochs 15->20", "lr 0.5->0.125", "momentum 0.9->0.5", "weight-decay 0.0001->0.25",
                          "dropout 0->0.375", "input-dropout 0->0.0625", "max-norm 0->3", "shift 0->2",
                          "warmup-epochs 0->1.5", "momentum-end 0->0.99", "momentum-ramp-epochs 0->2.5",
                          "lr-schedule cosine->constant", "compress none->bf16", "data first.h5->second.h5"};
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++) {
        if (!strstr(changes, said[i])) printf("\n  resume: '%s' not in '%s'\n", said[i], changes);
        CU_ASSERT_PTR_NOT_NULL(strstr(changes, said[i]));
    }
}

int main(void) {
    CU_TestInfo tests[] = {
        {"defaults match the documented contract", test_defaults},
        {"every option parses", test_all_options},
        {"bad options are rejected with a message", test_bad_options},
        {"a checkpoint's settings pass the command line's checks", test_run_setting_parse},
        {"local batches partition the global batch evenly", test_local_batches_partition_the_global_batch},
        {"environment knobs: counts, words, empty as unset", test_environment_knobs},
        {"environment knobs: a misspelt name is refused", test_misspelt_knob_names},
        {"environment: OMP_NUM_THREADS a count or list, the first in --threads' range", test_omp_num_threads},
        {"a resume takes each changeable setting given, the checkpoint's otherwise", test_resume_merge},
        CU_TEST_INFO_NULL};
    return nn_run_suite("options", tests);
}
