/*
 * test_saslprep.c - SASLprep (RFC 4013) over libidn's stringprep (core/saslprep).
 *
 * RFC 4013 section 3's examples, the query/stored difference (unassigned
 * code points), and the bounds: a result that does not fit is refused,
 * never truncated.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/saslprep.h"

/* Prepare @in; the result's length (or the negative errno), the bytes in @out. */
static int prep(const char *in, bool stored, uint8_t *out, size_t cap, const char **why)
{
    *why = NULL;
    return saslprep_prepare((const uint8_t *)in, strlen(in), out, cap, stored, why);
}

static void prepares_to(const char *in, const char *want)
{
    uint8_t out[256];
    const char *why;

    for (int stored = 0; stored < 2; stored++) {
        int n = prep(in, stored, out, sizeof(out), &why);

        cr_assert_eq(n, (int)strlen(want), "%s (stored %d): %d %s", in, stored, n, why);
        cr_assert_eq(memcmp(out, want, (size_t)n), 0, "%s", in);
    }
}

static void refused(const char *in, bool stored, const char *frag)
{
    uint8_t out[256];
    const char *why;
    int n = prep(in, stored, out, sizeof(out), &why);

    cr_assert_eq(n, -EINVAL, "%s: %d", in, n);
    cr_assert_not_null(why);
    cr_assert_not_null(strstr(why, frag), "%s: %s", in, why);
}

Test(saslprep, rfc4013_section3_examples)
{
    prepares_to("I\xc2\xadX", "IX");        /* U+00AD SOFT HYPHEN: mapped to nothing */
    prepares_to("user", "user");            /* no transformation */
    prepares_to("USER", "USER");            /* case preserved, not folded */
    prepares_to("\xc2\xaa", "a");           /* U+00AA FEMININE ORDINAL INDICATOR: NFKC */
    prepares_to("\xe2\x85\xa8", "IX");      /* U+2168 ROMAN NUMERAL NINE: NFKC */
    refused("\x07", false, "prohibits");    /* U+0007: a control character */
    refused("\xd8\xa7\x31", false, "bidi"); /* U+0627 U+0031: RandALCat not at both ends */
}

Test(saslprep, spaces_composition_and_ascii)
{
    prepares_to("a\xe2\x80\x80" "b", "a b");            /* U+2000 EN QUAD: a space */
    prepares_to("a\xc2\xa0" "b", "a b");                /* U+00A0 NO-BREAK SPACE */
    prepares_to("Jo\xcc\x88rg", "J\xc3\xb6rg");         /* NFD o + U+0308 composes */
    prepares_to("J\xc3\xb6rg", "J\xc3\xb6rg");          /* already NFKC: unchanged */
    prepares_to("p\xc3\xa4sswo\xcc\x88rd", "p\xc3\xa4ssw\xc3\xb6rd");
    prepares_to(" !~ spaces and ASCII stay ", " !~ spaces and ASCII stay ");
    prepares_to("", "");
}

Test(saslprep, unassigned_code_points_pass_in_queries_only)
{
    uint8_t out[16];
    const char *why;

    /* U+0221 is unassigned in Unicode 3.2, stringprep's version (RFC 3454 table A.1). */
    cr_assert_eq(prep("x\xc8\xa1", false, out, sizeof(out), &why), 3, "%s", why);
    cr_assert_eq(memcmp(out, "x\xc8\xa1", 3), 0);
    refused("x\xc8\xa1", true, "unassigned");
}

Test(saslprep, bad_input_is_refused_with_a_reason)
{
    uint8_t out[16];
    const char *why;

    refused("us\xc3r", false, "UTF-8");           /* a truncated sequence */
    refused("\xff", false, "UTF-8");
    refused("a\x7f", false, "prohibits");         /* DEL */
    refused("\xe2\x80\xae" "a", false, "prohibit"); /* U+202E RIGHT-TO-LEFT OVERRIDE */
    refused("\xee\x80\x80", false, "prohibits");  /* U+E000: private use */
    /* A NUL inside: prohibited (a control), and never cut short at it. */
    cr_assert_eq(saslprep_prepare((const uint8_t *)"a\0\xc3\xa9", 4, out, sizeof(out), false,
                                  &why),
                 -EINVAL);
}

Test(saslprep, results_that_do_not_fit_are_refused_not_truncated)
{
    uint8_t out[SASLPREP_IN_BYTES_MAX + 1];
    uint8_t big[SASLPREP_IN_BYTES_MAX + 1];
    const char *why;

    cr_assert_eq(prep("abcd", false, out, 3, &why), -ENOSPC);
    cr_assert_not_null(why);
    /* U+2168 is 3 bytes and prepares to 2: fits in 2; "IXIX" does not fit in 3. */
    cr_assert_eq(prep("\xe2\x85\xa8", false, out, 2, &why), 2, "%s", why);
    cr_assert_eq(prep("\xe2\x85\xa8\xe2\x85\xa8", false, out, 3, &why), -ENOSPC);
    /* U+FDFA grows to 18 code points (33 bytes) under NFKC. */
    cr_assert_eq(prep("\xef\xb7\xba", false, out, 32, &why), -ENOSPC);
    cr_assert_eq(prep("\xef\xb7\xba", false, out, 33, &why), 33, "%s", why);
    memset(big, 'a', sizeof(big));
    cr_assert_eq(saslprep_prepare(big, sizeof(big), out, sizeof(out), true, &why), -ENOSPC);
    cr_assert_eq(saslprep_prepare(big, SASLPREP_IN_BYTES_MAX, out, sizeof(out), true, &why),
                 (int)SASLPREP_IN_BYTES_MAX);
}

Test(saslprep, identity_fast_path_is_printable_ascii_only)
{
    cr_assert(saslprep_is_identity((const uint8_t *)"pencil ~", 8));
    cr_assert(saslprep_is_identity((const uint8_t *)"", 0));
    cr_assert_not(saslprep_is_identity((const uint8_t *)"a\x7f", 2));
    cr_assert_not(saslprep_is_identity((const uint8_t *)"\t", 1));
    cr_assert_not(saslprep_is_identity((const uint8_t *)"\xc3\xa9", 2));
}
