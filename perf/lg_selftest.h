/*
 * lg_selftest.h - the load generator's built-in self-test
 * (`ringmq-loadgen selftest`). Main thread only.
 */
#ifndef RINGMQ_LG_SELFTEST_H
#define RINGMQ_LG_SELFTEST_H

/* Run every check; print failures to stderr. Returns 0 if all passed, else 1. */
int lg_selftest_run(void);

#endif
