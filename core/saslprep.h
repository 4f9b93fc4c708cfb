/*
 * saslprep.h - SASLprep (RFC 4013), the stringprep (RFC 3454) profile
 * SCRAM (RFC 5802) prepares user names and passwords with, over GNU
 * libidn's stringprep and its "SASLprep" tables, rather than Unicode
 * tables of our own.
 *
 * What it does to a UTF-8 string: non-ASCII spaces become U+0020, the
 * characters "commonly mapped to nothing" (soft hyphen, zero-width joiners,
 * ...) go, NFKC normalization, then refusal of prohibited characters
 * (controls, private use, surrogates, non-characters, ...) and of bad
 * bidirectional text. On printable ASCII it is the identity. A query
 * string may hold unassigned code points, a stored string may not.
 *
 * Pure computation (libidn's tables are read-only; no I/O, no state of
 * ours); allocates only inside libidn while it runs. Any thread.
 */
#ifndef RINGMQ_SASLPREP_H
#define RINGMQ_SASLPREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest input taken, in bytes (a SCRAM message's bound). */
#define SASLPREP_IN_BYTES_MAX 1024u

/*
 * Prepare @in (@len bytes, UTF-8, no NUL) into @out (@cap bytes; the
 * result is not NUL-terminated). @stored: refuse unassigned code points
 * (a stored string: a password, RFC 5802's Normalize()); else allow them
 * (a query: a user name the client sent). Returns the result's length
 * (0 when everything was mapped to nothing), or with *@why a static
 * phrase: -ENOSPC when it would be longer than @cap (or @len past
 * SASLPREP_IN_BYTES_MAX), -ENOMEM, -EINVAL for anything else (not UTF-8,
 * a prohibited character, an unassigned one in a stored string, bad
 * bidirectional text).
 */
int saslprep_prepare(const uint8_t *in, size_t len, uint8_t *out, size_t cap, bool stored,
                     const char **why);

/* True when SASLprep leaves @in (@len bytes) as it is: printable ASCII only (a fast path). */
bool saslprep_is_identity(const uint8_t *in, size_t len);

#endif
