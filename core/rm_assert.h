/*
 * rm_assert.h - programmer-error assertions, on in every build.
 *
 * RM_ASSERT is for invariants the code itself guarantees. Hostile or
 * malformed peer input is never asserted on: it is answered per the spec and
 * the connection is closed. Any thread may use it.
 */
#ifndef RINGMQ_RM_ASSERT_H
#define RINGMQ_RM_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define RM_ASSERT(cond)                                                                        \
    do {                                                                                       \
        if (__builtin_expect(!(cond), 0)) {                                                    \
            fprintf(stderr, "ringmq: assertion failed: %s (%s:%d %s)\n", #cond, __FILE__,      \
                    __LINE__, __func__);                                                       \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#define RM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
