/* Shared CUnit driver: run one suite, return non-zero when anything failed.
 * (CU_get_error() alone returns 0 even when tests fail.) */
#ifndef NN_CUNIT_RUN_H
#define NN_CUNIT_RUN_H

#include <CUnit/Basic.h>

static inline int nn_run_suite(const char *name, CU_TestInfo *tests) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_SuiteInfo suites[] = {{name, NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    if (CU_register_suites(suites) != CUE_SUCCESS) return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = (int)CU_get_number_of_failures() + (int)CU_get_number_of_suites_failed();
    int error = CU_get_error();
    CU_cleanup_registry();
    return failed || error ? 1 : 0;
}

#endif
