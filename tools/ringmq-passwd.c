/*
 * ringmq-passwd - manage a password file for ringmq (mosquitto's format).
 *
 *   ringmq-passwd [-c] [-I ITER] FILE USER        add or update USER, prompting twice
 *   ringmq-passwd [-c] [-I ITER] -b FILE USER PASS  the same with PASS from the command line
 *   ringmq-passwd -D FILE USER                     delete USER
 *   ringmq-passwd -U FILE                          hash every plaintext "user:password" line
 *
 * As Debian's mosquitto_passwd 2.0.11: -c creates (or empties) FILE; the
 * hash is $7$ (PBKDF2-SHA512, 101 iterations unless -I, a 12-byte random
 * salt), made by core/pwhash, the broker's own code, and lines are split by
 * config/pwfile's pwfile_split(), the broker's reader. Other lines
 * (comments, other users) are kept as they are, in order. The file is
 * replaced atomically: written to a temporary file in the same directory,
 * flushed, then renamed over it; a new file is mode 0600, an existing one
 * keeps its mode. The prompted password is never echoed (termios).
 *
 * Exit status: 0 done, 1 error (message on stderr), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "config/pwfile.h"
#include "core/pwdb.h"
#include "core/pwhash.h"
#include "core/saslprep.h"

/* Longest password read from the terminal. */
#define PASS_MAX 512
/* Most lines a file may have here (as the broker's reader allows users). */
#define LINES_MAX PWFILE_USERS_MAX

struct lines {
    char **v; /* each malloc'd, without its line end */
    size_t n;
    size_t cap;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ringmq-passwd [-c] [-I ITERATIONS] FILE USER\n"
                 "       ringmq-passwd [-c] [-I ITERATIONS] -b FILE USER PASSWORD\n"
                 "       ringmq-passwd -D FILE USER\n"
                 "       ringmq-passwd -U FILE\n"
                 "  -c  create FILE (an existing one is emptied first)\n"
                 "  -b  take the password from the command line (batch)\n"
                 "  -D  delete USER\n"
                 "  -U  replace the plaintext passwords of FILE with hashes\n"
                 "  -I  PBKDF2 iterations (default %u, as mosquitto_passwd)\n",
            PWHASH_ITERATIONS);
}

static int lines_push(struct lines *l, char *s)
{
    if (l->n == LINES_MAX) {
        free(s);
        return -1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));

        if (v == NULL) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
}

/* Read @path's lines into @l. 0, or -1 after a message. */
static int read_lines(const char *path, struct lines *l)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *f = fopen(path, "re");
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "ringmq-passwd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        char *copy;

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        copy = strndup(line, len);
        rc = copy != NULL ? lines_push(l, copy) : -1;
        if (rc < 0) {
            fprintf(stderr, "ringmq-passwd: %s: out of memory\n", path);
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "ringmq-passwd: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* Index of @user's line in @l, or l->n. */
static size_t find_user(const struct lines *l, const char *user)
{
    size_t ulen = strlen(user);

    for (size_t i = 0; i < l->n; i++) {
        const char *u;
        const char *rest;
        const char *why;
        size_t len;
        size_t rlen;

        if (pwfile_split(l->v[i], strlen(l->v[i]), &u, &len, &rest, &rlen, &why) == 1 &&
            len == ulen && memcmp(u, user, len) == 0) {
            return i;
        }
    }
    return l->n;
}

/* "USER:HASH" for @pw, malloc'd; NULL after a message. */
static char *hashed_line(const char *user, size_t ulen, const char *pw, size_t pwlen,
                         uint32_t iterations)
{
    uint8_t salt[PWHASH_SALT_BYTES];
    uint8_t prep[SASLPREP_IN_BYTES_MAX];
    char text[PWHASH_TEXT_MAX];
    struct pwhash h;
    const char *why;
    char *out;
    int n;

    if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt)) {
        fprintf(stderr, "ringmq-passwd: cannot draw a salt: %s\n", strerror(errno));
        return NULL;
    }
    /*
     * The hash of SASLprep(password), as SCRAM-SHA-512 clients compute it
     * (RFC 5802's Normalize()); the broker's plain logins try that form
     * too. The same bytes for ASCII and already prepared passwords.
     */
    n = saslprep_prepare((const uint8_t *)pw, pwlen, prep, sizeof(prep), true, &why);
    if (n < 0) {
        fprintf(stderr,
                "ringmq-passwd: warning: user '%.*s': the password is kept as typed (SASLprep: "
                "%s), so SCRAM-SHA-512 logins will not work for it; plain logins will\n",
                (int)ulen, user, why);
    } else {
        pw = (const char *)prep;
        pwlen = (size_t)n;
    }
    if (pwhash_make(&h, (const uint8_t *)pw, pwlen, salt, sizeof(salt), iterations) < 0 ||
        pwhash_format(&h, text, sizeof(text)) < 0) {
        memset(prep, 0, sizeof(prep));
        fprintf(stderr, "ringmq-passwd: cannot hash the password\n");
        return NULL;
    }
    memset(prep, 0, sizeof(prep));
    if (asprintf(&out, "%.*s:%s", (int)ulen, user, text) < 0) {
        fprintf(stderr, "ringmq-passwd: out of memory\n");
        return NULL;
    }
    return out;
}

/*
 * Write @l to @path atomically: a temporary file beside it, then rename.
 * Mode @mode. 0, or -1 after a message (the file is unchanged then).
 */
static int write_lines(const char *path, const struct lines *l, mode_t mode)
{
    char *tmp = NULL;
    FILE *f = NULL;
    int fd = -1;
    int rc = -1;

    if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
        tmp = NULL;
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0 || fchmod(fd, mode) < 0) {
        goto out;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        goto out;
    }
    fd = -1;
    for (size_t i = 0; i < l->n; i++) {
        if (fprintf(f, "%s\n", l->v[i]) < 0) {
            goto out;
        }
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) < 0) {
        goto out;
    }
    free(tmp);
    return 0;
out:
    fprintf(stderr, "ringmq-passwd: %s: cannot write: %s\n", path, strerror(errno));
    if (f != NULL) {
        fclose(f);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    return rc;
}

/* Read a password from the terminal without echo into @buf. 0, or -1 after a message. */
static int prompt(const char *what, char *buf, size_t cap)
{
    struct termios old;
    struct termios quiet;
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    size_t len;
    char *ok;

    fprintf(stderr, "%s", what);
    fflush(stderr);
    if (tty) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ok = fgets(buf, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (ok == NULL) {
        fprintf(stderr, "ringmq-passwd: no password read\n");
        return -1;
    }
    len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
    } else if (len == cap - 1) {
        fprintf(stderr, "ringmq-passwd: password longer than %d bytes\n", PASS_MAX - 2);
        return -1;
    }
    return 0;
}

static bool user_valid(const char *user)
{
    size_t len = strlen(user);

    if (len == 0 || len > PWDB_USERNAME_BYTES_MAX || strchr(user, ':') != NULL ||
        user[0] == '#') {
        fprintf(stderr,
                "ringmq-passwd: a user name is 1..%u bytes, without ':' and not starting "
                "with '#'\n",
                PWDB_USERNAME_BYTES_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f) {
            fprintf(stderr, "ringmq-passwd: control character in the user name\n");
            return false;
        }
    }
    return true;
}

/* -U: hash every line whose value is not a hash already. */
static int upgrade(struct lines *l, uint32_t iterations)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *user;
        const char *rest;
        const char *why;
        size_t ulen;
        size_t rlen;
        struct pwhash h;
        char *line;

        if (pwfile_split(l->v[i], strlen(l->v[i]), &user, &ulen, &rest, &rlen, &why) != 1 ||
            pwhash_parse(rest, rlen, &h, &why) == 0) {
            continue; /* a comment, a blank, or hashed already */
        }
        line = hashed_line(user, ulen, rest, rlen, iterations);
        if (line == NULL) {
            return -1;
        }
        free(l->v[i]);
        l->v[i] = line;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool create = false;
    bool batch = false;
    bool del = false;
    bool up = false;
    uint32_t iterations = PWHASH_ITERATIONS;
    struct lines l = {0};
    char pw[PASS_MAX];
    char pw2[PASS_MAX];
    const char *path;
    const char *user = NULL;
    const char *pass = NULL;
    mode_t mode = 0600;
    struct stat st;
    int want;
    int opt;
    int rc = 1;

    while ((opt = getopt(argc, argv, "bcDUI:h")) != -1) {
        char *end;
        unsigned long v;

        switch (opt) {
        case 'b':
            batch = true;
            break;
        case 'c':
            create = true;
            break;
        case 'D':
            del = true;
            break;
        case 'U':
            up = true;
            break;
        case 'I':
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v == 0 || v > PWHASH_ITERATIONS_MAX) {
                fprintf(stderr, "ringmq-passwd: -I takes 1..%u\n", PWHASH_ITERATIONS_MAX);
                return 2;
            }
            iterations = (uint32_t)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    want = up ? 1 : batch ? 3 : 2;
    if ((int)(create + del + up) > 1 || ((del || up) && batch) || argc - optind != want) {
        usage(stderr);
        return 2;
    }
    path = argv[optind];
    if (!up) {
        user = argv[optind + 1];
        pass = batch ? argv[optind + 2] : NULL;
        if (!user_valid(user)) {
            return 1;
        }
    }
    if (!create) {
        if (stat(path, &st) < 0) {
            fprintf(stderr, "ringmq-passwd: %s: %s (-c creates it)\n", path, strerror(errno));
            goto out;
        }
        if (read_lines(path, &l) < 0) {
            goto out;
        }
        mode = st.st_mode & 07777;
    }
    if (up) {
        if (upgrade(&l, iterations) < 0) {
            goto out;
        }
    } else if (del) {
        size_t i = find_user(&l, user);

        if (i == l.n) {
            fprintf(stderr, "ringmq-passwd: user %s not in %s\n", user, path);
            goto out;
        }
        free(l.v[i]);
        memmove(&l.v[i], &l.v[i + 1], (l.n - i - 1) * sizeof(*l.v));
        l.n--;
    } else {
        size_t i;
        char *line;

        if (pass == NULL) {
            if (prompt("Password: ", pw, sizeof(pw)) < 0 ||
                prompt("Reenter password: ", pw2, sizeof(pw2)) < 0) {
                goto out;
            }
            if (strcmp(pw, pw2) != 0) {
                fprintf(stderr, "ringmq-passwd: passwords do not match\n");
                goto out;
            }
            pass = pw;
        }
        if (pass[0] == '\0') {
            fprintf(stderr, "ringmq-passwd: empty password\n");
            goto out;
        }
        line = hashed_line(user, strlen(user), pass, strlen(pass), iterations);
        if (line == NULL) {
            goto out;
        }
        i = find_user(&l, user);
        if (i < l.n) {
            free(l.v[i]);
            l.v[i] = line;
        } else if (lines_push(&l, line) < 0) {
            fprintf(stderr, "ringmq-passwd: out of memory\n");
            goto out;
        }
    }
    rc = write_lines(path, &l, mode) < 0 ? 1 : 0;
out:
    memset(pw, 0, sizeof(pw));
    memset(pw2, 0, sizeof(pw2));
    lines_free(&l);
    return rc;
}
