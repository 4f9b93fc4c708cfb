/*
 * pwfile.h - password files in mosquitto's format: read one into a
 * read-only struct pwdb (core/pwdb.h).
 *
 * One user per line, "NAME:HASH" with HASH as core/pwhash parses it ($7$
 * PBKDF2-SHA512 or $6$ SHA-512, as Debian's mosquitto_passwd writes them).
 * Empty lines and lines starting with '#' are skipped; CRLF line ends are
 * accepted. Anything else is an error naming the file and the line. The
 * broker (config_check, config_login) and tools/ringmq-passwd read files
 * only through here. Start-up thread (or shard 0, building a reload); no
 * state.
 */
#ifndef RINGMQ_PWFILE_H
#define RINGMQ_PWFILE_H

#include <stdbool.h>
#include <stddef.h>

struct pwdb;

/* Longest line read; a longer one is an error. */
#define PWFILE_LINE_MAX 1024u
/* Most users one file may hold (a bound on what a file can make the broker allocate). */
#define PWFILE_USERS_MAX 10000000u

/*
 * One line @line (@len bytes, its line end already cut) split at its first
 * ':' into a user name and what follows. Returns 1 for an entry, 0 for a
 * line to skip (blank, or a '#' comment), -1 with *@why for a line without
 * ':' or with an empty name.
 */
int pwfile_split(const char *line, size_t len, const char **user, size_t *user_len,
                 const char **rest, size_t *rest_len, const char **why);

/*
 * Read password file @path. Returns the database (free with pwfile_free()),
 * or NULL with every problem in @err, one per line, in file order:
 * "PATH:LINE: problem" for what a line holds (the file is read to its end,
 * so each bad line is told), "PATH: problem" for the whole file. *@sys_errno is the errno when
 * the file could not be opened or read (the caller may then point at the
 * configuration line that named it), else 0.
 */
struct pwdb *pwfile_load(const char *path, char *err, size_t err_len, int *sys_errno);

/* Free @db (NULL is fine). */
void pwfile_free(struct pwdb *db);

#endif
