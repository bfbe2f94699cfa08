/* The node's memory limit as cgroups set it, read from a tree of files built here:
 * Slurm's --mem on the job's group (not the task's), a container's own group seen as
 * the root, v1's co-mounted controllers and memory-with-swap limit, "max" and v1's "unlimited". */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_run.h"
#include "nn/placement.h"

static char root[256];

/* root/PATH holds TEXT, its directories made as needed. */
static void put(const char *path, const char *text) {
    char full[512];
    snprintf(full, sizeof full, "%s/%s", root, path);
    for (char *slash = strchr(full + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(full, 0755);
        *slash = '/';
    }
    FILE *f = fopen(full, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* The limit for /proc/self/cgroup text `self`, the v2 tree at root/v2/TAG and the
 * v1 memory tree at root/v1/TAG. */
static double limit_of(const char *tag, const char *self, double *swap) {
    char v2[300], v1[300];
    snprintf(v2, sizeof v2, "%s/v2/%s", root, tag);
    snprintf(v1, sizeof v1, "%s/v1/%s", root, tag);
    return nn_placement_cgroup_limit(self, v2, v1, swap);
}

static const double GIB = 1024.0 * 1024.0 * 1024.0;

static void test_v2_slurm_job_limit(void) {
    put("v2/slurm/job_7/memory.max", "4294967296\n"); /* --mem=4G: on the job */
    put("v2/slurm/job_7/step_0/memory.max", "max\n");
    put("v2/slurm/job_7/step_0/task_0/memory.max", "max\n");
    put("v2/slurm/job_7/memory.swap.max", "0\n");
    put("v2/slurm/memory.max", "8589934592\n"); /* a looser limit higher up */
    double swap;
    CU_ASSERT_DOUBLE_EQUAL(limit_of("slurm", "0::/job_7/step_0/task_0\n", &swap), 4 * GIB, 1);
    CU_ASSERT_DOUBLE_EQUAL(swap, 0, 0.5);
    put("v2/slurm/job_7/step_0/memory.max", "2147483648\n"); /* the lowest on the way up wins */
    CU_ASSERT_DOUBLE_EQUAL(limit_of("slurm", "0::/job_7/step_0/task_0\n", &swap), 2 * GIB, 1);
}

static void test_v2_container_root(void) {
    put("v2/box/memory.max", "1073741824"); /* no newline; the group's own path is not visible */
    double swap;
    CU_ASSERT_DOUBLE_EQUAL(limit_of("box", "0::/machine.slice/box-1.scope\n", &swap), 1 * GIB, 1);
    CU_ASSERT_DOUBLE_EQUAL(swap, -1, 0.5); /* no swap limit: none found */
    CU_ASSERT_DOUBLE_EQUAL(limit_of("box", "0::/\n", &swap), 1 * GIB, 1);
}

static void test_v1_co_mounted(void) {
    put("v1/hpc/slurm/uid_0/job_9/memory.stat", "cache 12\nrss 34\nhierarchical_memory_limit 3221225472\n");
    double swap;
    const char *self = "11:pids:/slurm/uid_0/job_9\n5:cpuacct,cpu,memory:/slurm/uid_0/job_9\n1:name=systemd:/\n";
    CU_ASSERT_DOUBLE_EQUAL(limit_of("hpc", self, &swap), 3 * GIB, 1);
    CU_ASSERT_DOUBLE_EQUAL(swap, -1, 0.5); /* swap not accounted: no memsw line */
    /* with swap accounted: memory and swap together 4 GiB, so 1 GiB of swap */
    put("v1/swap/slurm/job_7/memory.stat", "hierarchical_memory_limit 3221225472\n"
                                           "hierarchical_memsw_limit 4294967296\ntotal_rss 5\n");
    CU_ASSERT_DOUBLE_EQUAL(limit_of("swap", "3:memory:/slurm/job_7\n", &swap), 3 * GIB, 1);
    CU_ASSERT_DOUBLE_EQUAL(swap, 1 * GIB, 1);
    put("v1/unlimited/memory.stat", "hierarchical_memory_limit 9223372036854771712\n"); /* v1's "none" */
    CU_ASSERT_DOUBLE_EQUAL(limit_of("unlimited", "4:memory:/\n", &swap), -1, 0.5);
}

static void test_no_limit(void) {
    double swap;
    CU_ASSERT_DOUBLE_EQUAL(limit_of("nothing", "", &swap), -1, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(swap, -1, 0.5);
    put("v2/maxed/memory.max", "max\n");
    CU_ASSERT_DOUBLE_EQUAL(limit_of("maxed", "0::/\n", &swap), -1, 0.5);
    char node_source[64];
    double node = nn_placement_node_memory(node_source, sizeof node_source); /* this machine's, as the run sees it */
    CU_ASSERT(node > 0);
    CU_ASSERT(strstr(node_source, "RAM") || strstr(node_source, "cgroup"));
}

int main(void) {
    const char *tmp = getenv("NN_TEST_TMP");
    snprintf(root, sizeof root, "%s/placement-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) return 1;
    CU_TestInfo tests[] = {
        {"v2: the lowest memory.max from the task's group up (Slurm's job)", test_v2_slurm_job_limit},
        {"v2: a container's own group read at the root", test_v2_container_root},
        {"v1: hierarchical_memory_limit and memsw, co-mounted controllers, unlimited", test_v1_co_mounted},
        {"no limit anywhere", test_no_limit},
        CU_TEST_INFO_NULL};
    int status = nn_run_suite("placement", tests);
    char command[400];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    if (system(command) != 0) status = status ? status : 1;
    return status;
}
