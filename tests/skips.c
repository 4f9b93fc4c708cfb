/*
 * skips.c - in CI a skipped Criterion test fails the run (issue 12).
 *
 * Linked into every unit and e2e test executable (the CMake object library
 * ringmq_test_skips). cr_skip_test() makes a test binary exit 0, so without
 * this a test that skips itself in CI - io_uring refused, a kernel feature
 * missing - would hide lost coverage behind a green run. At the end of the
 * run this hook lists every test that skipped itself; when the environment
 * variable CI is set and not empty, each one not named in the allow-list
 * (tests/skips_allowed.txt, path compiled in as RINGMQ_SKIPS_ALLOWED) is
 * counted as failed instead, so the binary exits 1. Outside CI it only prints.
 *
 * Tests disabled with .disabled or left out by --filter are not runtime skips
 * and are ignored: Criterion marks both the same way (data->disabled).
 *
 * How the exit status is forced: Criterion 2.4 runs the POST_ALL report hook
 * before it computes its result (tests_failed == 0 && errors == 0) and before
 * it prints the synthesis line, so moving a test from skipped to failed in
 * the global, suite and test stats here is what the runner then reports and
 * returns - no exit() behind its back.
 *
 * Runs only in the Criterion runner process (report hooks do); owns nothing
 * after it returns.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest allow-list line read whole; longer lines never match. */
#define SKIPS_LINE_MAX 1024

static bool ci_is_set(void)
{
    const char *v = getenv("CI");

    return v != NULL && v[0] != '\0';
}

static bool ran_and_skipped(const struct criterion_suite_stats *ss,
                            const struct criterion_test_stats *ts)
{
    const struct criterion_suite *suite = ss->suite;

    if (ts->test_status != CR_STATUS_SKIPPED || ts->test->data->disabled) {
        return false;
    }
    return suite == NULL || suite->data == NULL || !suite->data->disabled;
}

/*
 * allowed_reason() - find "SUITE/NAME REASON" in the allow-list.
 *
 * Copies the reason (without its newline) into @reason and returns true when
 * a line names @suite/@name and gives a reason after it; '#' lines, blank
 * lines and entries without a reason allow nothing. Borrows every argument.
 */
static bool allowed_reason(const char *suite, const char *name, char *reason, size_t reason_size)
{
    char line[SKIPS_LINE_MAX];
    size_t suite_len = strlen(suite);
    size_t name_len = strlen(name);
    bool found = false;
    FILE *f = fopen(RINGMQ_SKIPS_ALLOWED, "r");

    if (f == NULL) {
        goto out;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        const char *p = line;

        if (strncmp(p, suite, suite_len) != 0 || p[suite_len] != '/') {
            continue;
        }
        p += suite_len + 1;
        if (strncmp(p, name, name_len) != 0 || (p[name_len] != ' ' && p[name_len] != '\t')) {
            continue;
        }
        p += name_len + strspn(p + name_len, " \t");
        if (*p == '\n' || *p == '\0') {
            continue;
        }
        snprintf(reason, reason_size, "%.*s", (int)strcspn(p, "\n"), p);
        found = true;
    }
    fclose(f);
out:
    return found;
}

/* Moves @ts from skipped to failed in every count the runner reads. */
static void count_as_failed(struct criterion_global_stats *gs, struct criterion_suite_stats *ss,
                            struct criterion_test_stats *ts)
{
    ts->test_status = CR_STATUS_FAILED;
    --ss->tests_skipped;
    ++ss->tests_failed;
    --gs->tests_skipped;
    ++gs->tests_failed;
}

ReportHook(POST_ALL)(struct criterion_global_stats *gs)
{
    bool ci = ci_is_set();
    size_t failed = 0;

    for (struct criterion_suite_stats *ss = gs->suites; ss != NULL; ss = ss->next) {
        for (struct criterion_test_stats *ts = ss->tests; ts != NULL; ts = ts->next) {
            const char *suite = ts->test->category;
            const char *name = ts->test->name;
            const char *why = ts->message != NULL ? ts->message : "(no message)";
            char reason[SKIPS_LINE_MAX];

            if (!ran_and_skipped(ss, ts)) {
                continue;
            }
            if (!ci) {
                fprintf(stderr, "skips: %s/%s skipped: %s\n", suite, name, why);
            } else if (allowed_reason(suite, name, reason, sizeof(reason))) {
                fprintf(stderr, "skips: %s/%s skipped (allowed in CI: %s): %s\n", suite, name,
                        reason, why);
            } else {
                fprintf(stderr,
                        "skips: FAIL %s/%s skipped in CI: %s (not in tests/skips_allowed.txt)\n",
                        suite, name, why);
                count_as_failed(gs, ss, ts);
                ++failed;
            }
        }
    }
    if (failed > 0) {
        fprintf(stderr, "skips: %zu skipped test(s) counted as failed because CI is set\n",
                failed);
    }
}
