/*
 * saslprep.c - SASLprep over GNU libidn's stringprep (see saslprep.h).
 *
 * libidn's stringprep() works in place on a NUL-terminated UTF-8 buffer
 * of a given size, so the input is copied into a buffer big enough for
 * NFKC's growth and the result copied out. Calls nothing else in core/.
 */
#include "core/saslprep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#include "core/rm_assert.h"

/*
 * Room for the prepared form: NFKC can make one code point many (U+FDFA is
 * 18 of them), so allow for growth; past it stringprep() says the buffer
 * is too small and we refuse, never truncate.
 */
#define WORK_BYTES (SASLPREP_IN_BYTES_MAX * 4u + 1u)

bool saslprep_is_identity(const uint8_t *in, size_t len)
{
    RM_ASSERT(in != NULL || len == 0);
    for (size_t i = 0; i < len; i++) {
        if (in[i] < 0x20 || in[i] > 0x7e)
            return false;
    }
    return true;
}

static const char *rc_why(int rc)
{
    switch (rc) {
    case STRINGPREP_CONTAINS_UNASSIGNED:
        return "an unassigned Unicode code point (SASLprep, RFC 4013)";
    case STRINGPREP_CONTAINS_PROHIBITED:
        return "a character SASLprep prohibits (RFC 4013 section 2.3)";
    case STRINGPREP_BIDI_BOTH_L_AND_RAL:
    case STRINGPREP_BIDI_LEADTRAIL_NOT_RAL:
    case STRINGPREP_BIDI_CONTAINS_PROHIBITED:
        return "bidirectional text SASLprep refuses (RFC 3454 section 6)";
    case STRINGPREP_TOO_SMALL_BUFFER:
        return "too long once prepared (SASLprep)";
    case STRINGPREP_MALLOC_ERROR:
        return "out of memory";
    default:
        return "not UTF-8";
    }
}

int saslprep_prepare(const uint8_t *in, size_t len, uint8_t *out, size_t cap, bool stored,
                     const char **why)
{
    char *work;
    int rc;
    size_t n;

    RM_ASSERT(in != NULL || len == 0);
    RM_ASSERT(out != NULL && why != NULL);
    if (len > SASLPREP_IN_BYTES_MAX) {
        *why = "too long for SASLprep";
        return -ENOSPC;
    }
    if (saslprep_is_identity(in, len)) {
        /* Printable ASCII: SASLprep changes nothing (no mapping, NFKC-stable, allowed). */
        if (len > cap) {
            *why = "too long once prepared (SASLprep)";
            return -ENOSPC;
        }
        memcpy(out, in, len);
        return (int)len;
    }
    if (memchr(in, '\0', len) != NULL) {
        *why = "a character SASLprep prohibits (RFC 4013 section 2.3)";
        return -EINVAL;
    }
    work = malloc(WORK_BYTES);
    if (work == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    memcpy(work, in, len);
    work[len] = '\0';
    rc = stringprep(work, WORK_BYTES, stored ? STRINGPREP_NO_UNASSIGNED : 0, stringprep_saslprep);
    n = rc == STRINGPREP_OK ? strlen(work) : 0;
    if (rc == STRINGPREP_OK && n > cap) {
        rc = STRINGPREP_TOO_SMALL_BUFFER;
    }
    if (rc == STRINGPREP_OK) {
        memcpy(out, work, n);
    }
    /* It may be a password: leave no copy behind. */
    memset(work, 0, WORK_BYTES);
    free(work);
    if (rc != STRINGPREP_OK) {
        *why = rc_why(rc);
        return rc == STRINGPREP_TOO_SMALL_BUFFER ? -ENOSPC
               : rc == STRINGPREP_MALLOC_ERROR   ? -ENOMEM
                                                 : -EINVAL;
    }
    RM_ASSERT(n <= cap && n <= WORK_BYTES);
    return (int)n;
}
