/*
 * test_pwfile.c - password files: core/pwhash (mosquitto's $6$ and $7$
 * hashes over wolfCrypt), config/pwfile (reading a file, one test per kind
 * of error, each checking the file and line in the message), the [auth]
 * keys of config/ (inheritance per listener, --test-config messages), the
 * snapshot config/config_login builds, and tools/ringmq-passwd round trips
 * checked with the broker's own code. Files made by Debian's real
 * mosquitto_passwd are read unchanged.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_login.h"
#include "config/pwfile.h"
#include "core/login.h"
#include "core/pwdb.h"
#include "core/pwhash.h"

static char dir[256];
static char pwpath[300];
static char ini[300];
static char err[CONFIG_ERR_MAX];
static char want[1024];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/ringmq-test-pwfile-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(pwpath, sizeof(pwpath), "%s/passwd", dir);
    snprintf(ini, sizeof(ini), "%s/t.ini", dir);
}

static void teardown(void)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(pwfile, .init = setup, .fini = teardown);

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");

    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
}

/* Run @cmd through the shell; its exit status. */
static int run(const char *cmd)
{
    int st = system(cmd);

    cr_assert_neq(st, -1);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static struct pwdb *load_ok(const char *path)
{
    int sys_errno;
    struct pwdb *db = pwfile_load(path, err, sizeof(err), &sys_errno);

    cr_assert_not_null(db, "%s", err);
    return db;
}

/* The user's password checks out with the broker's code. */
static bool verifies(const struct pwdb *db, const char *user, const char *pw)
{
    const struct pwdb_user *u = pwdb_find(db, (const uint8_t *)user, strlen(user));

    return u != NULL && pwhash_verify(&u->hash, (const uint8_t *)pw, strlen(pw));
}

/* Write @text as the password file; expect its load to fail with "PWFILE:@line: @msg". */
static void expect_error(const char *text, unsigned line, const char *msg)
{
    int sys_errno = -1;

    write_file(pwpath, text);
    cr_assert_null(pwfile_load(pwpath, err, sizeof(err), &sys_errno), "loaded:\n%s", text);
    cr_assert_eq(sys_errno, 0);
    snprintf(want, sizeof(want), "%s:%u: %s", pwpath, line, msg);
    cr_assert_str_eq(err, want);
}

/* ---- hashes ---- */

/*
 * python3: salt = bytes(range(1, 13)); pw = b'hunter2';
 * base64(sha512(pw + salt)) for $6$ (mosquitto hashes the password, then the
 * salt), and base64(pbkdf2_hmac('sha512', pw, salt, 1000, 64)) for $7$.
 */
#define VEC_SALT "AQIDBAUGBwgJCgsM"
#define VEC6                                                                                       \
    "$6$" VEC_SALT "$BvAI+Qf6pQOLRl808d6QZTT3a6B0xO5zIcHD3JzY0IlwG27yGPwEz2wOVlVnzMCgfQVblzctfy3" \
    "CVaRYU+etmQ=="
#define VEC7                                                                                       \
    "$7$1000$" VEC_SALT "$2nI5OKeONU6cg4dLECimR3V2A9/43CIqijDe8GPOIVEUUTuY0sVS4qcx1yzZCEPfW9mqlT" \
    "xbD96GJjAARouiuw=="

Test(pwfile, sha512_vector_from_python_hashlib_verifies)
{
    struct pwhash h;
    const char *why = NULL;

    cr_assert_eq(pwhash_parse(VEC6, strlen(VEC6), &h, &why), 0, "%s", why);
    cr_assert_eq(h.kind, PWHASH_SHA512);
    cr_assert_eq(h.salt_len, 12);
    cr_assert(pwhash_verify(&h, (const uint8_t *)"hunter2", 7));
    cr_assert_not(pwhash_verify(&h, (const uint8_t *)"hunter3", 7));
    cr_assert_not(pwhash_verify(&h, (const uint8_t *)"hunter", 6));
    cr_assert_not(pwhash_verify(&h, NULL, 0));
}

Test(pwfile, pbkdf2_vector_from_python_hashlib_verifies)
{
    struct pwhash h;
    const char *why = NULL;

    cr_assert_eq(pwhash_parse(VEC7, strlen(VEC7), &h, &why), 0, "%s", why);
    cr_assert_eq(h.kind, PWHASH_PBKDF2_SHA512);
    cr_assert_eq(h.iterations, 1000);
    cr_assert_eq(pwhash_cost(&h), 1000);
    cr_assert(pwhash_verify(&h, (const uint8_t *)"hunter2", 7));
    cr_assert_not(pwhash_verify(&h, (const uint8_t *)"Hunter2", 7));
}

Test(pwfile, made_hashes_format_parse_and_verify_back)
{
    const uint8_t salt[PWHASH_SALT_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    char text[PWHASH_TEXT_MAX];
    struct pwhash h;
    struct pwhash back;
    const char *why = NULL;
    int n;

    cr_assert_eq(pwhash_make(&h, (const uint8_t *)"hunter2", 7, salt, sizeof(salt), 1000), 0);
    n = pwhash_format(&h, text, sizeof(text));
    cr_assert_gt(n, 0);
    cr_assert_str_eq(text, VEC7, "the same bytes as Python's PBKDF2");
    cr_assert_eq(pwhash_parse(text, (size_t)n, &back, &why), 0, "%s", why);
    cr_assert(pwhash_verify(&back, (const uint8_t *)"hunter2", 7));
    cr_assert_eq(pwhash_format(&h, text, 20), -ENOSPC);
}

Test(pwfile, file_made_by_real_mosquitto_passwd_verifies)
{
    char cmd[4096];
    struct pwdb *db;
    const struct pwdb_user *u;

    if (access("/usr/bin/mosquitto_passwd", X_OK) != 0) {
        cr_skip_test("Debian's mosquitto_passwd (package mosquitto) is not installed");
    }
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/mosquitto_passwd -b -c '%s' alice 'open sesame' && "
             "/usr/bin/mosquitto_passwd -b '%s' bob 'p:w$d' 2>/dev/null",
             pwpath, pwpath);
    cr_assert_eq(run(cmd), 0);
    db = load_ok(pwpath);
    cr_assert_eq(db->count, 2);
    u = pwdb_find(db, (const uint8_t *)"alice", 5);
    cr_assert_not_null(u);
    cr_assert_eq(u->hash.kind, PWHASH_PBKDF2_SHA512, "mosquitto 2.0 writes $7$");
    cr_assert_eq(u->hash.iterations, PWHASH_ITERATIONS);
    cr_assert_eq(u->hash.salt_len, PWHASH_SALT_BYTES);
    cr_assert(verifies(db, "alice", "open sesame"));
    cr_assert(verifies(db, "bob", "p:w$d"));
    cr_assert_not(verifies(db, "alice", "open sesame "));
    cr_assert_not(verifies(db, "bob", "open sesame"));
    cr_assert_not(verifies(db, "carol", "open sesame"));
    pwfile_free(db);
}

Test(pwfile, equal_compares_every_byte)
{
    uint8_t a[64] = {0};
    uint8_t b[64] = {0};

    cr_assert(pwhash_equal(a, b, sizeof(a)));
    b[63] = 1;
    cr_assert_not(pwhash_equal(a, b, sizeof(a)));
    b[63] = 0;
    b[0] = 0x80;
    cr_assert_not(pwhash_equal(a, b, sizeof(a)));
}

/* ---- reading a file ---- */

Test(pwfile, comments_blank_lines_and_crlf_are_accepted)
{
    struct pwdb *db;
    char text[1024];

    snprintf(text, sizeof(text), "# users\r\n\r\n   \nzed:%s\r\namy:%s\n", VEC6, VEC7);
    write_file(pwpath, text);
    db = load_ok(pwpath);
    cr_assert_eq(db->count, 2);
    cr_assert_eq(db->cost_max, 1000);
    cr_assert(verifies(db, "amy", "hunter2"));
    cr_assert(verifies(db, "zed", "hunter2"));
    cr_assert_eq(pwdb_find(db, (const uint8_t *)"zed", 3)->line, 4);
    cr_assert_null(pwdb_find(db, (const uint8_t *)"ze", 2));
    cr_assert_null(pwdb_find(db, (const uint8_t *)"zedd", 4));
    pwfile_free(db);
}

Test(pwfile, empty_file_has_no_users)
{
    struct pwdb *db;

    write_file(pwpath, "");
    db = load_ok(pwpath);
    cr_assert_eq(db->count, 0);
    cr_assert_null(pwdb_find(db, (const uint8_t *)"a", 1));
    pwfile_free(db);
}

Test(pwfile, error_line_without_colon)
{
    expect_error("# ok\nalice\n", 2, "expected NAME:HASH (no ':' on the line)");
}

Test(pwfile, error_empty_user_name)
{
    expect_error(":" VEC6 "\n", 1, "empty user name before ':'");
}

Test(pwfile, error_plaintext_password_suggests_upgrade)
{
    expect_error("alice:" VEC6 "\nbob:secret\n", 2,
                 "user 'bob': unknown hash type (expected $6$ or $7$ as mosquitto_passwd "
                 "writes) (a plaintext password? ringmq-passwd -U hashes a file)");
}

Test(pwfile, error_unknown_hash_type)
{
    expect_error("alice:$1$abc$def\n", 1,
                 "user 'alice': unknown hash type (expected $6$ or $7$ as mosquitto_passwd "
                 "writes)");
}

Test(pwfile, error_bad_iteration_count)
{
    expect_error("alice:$7$x1$" VEC_SALT "$AAAA\n", 1,
                 "user 'alice': bad iteration count in $7$ hash");
    expect_error("alice:$7$0$" VEC_SALT "$AAAA\n", 1,
                 "user 'alice': iteration count out of range (1..1000000)");
    expect_error("alice:$7$2000000$" VEC_SALT "$AAAA\n", 1,
                 "user 'alice': iteration count out of range (1..1000000)");
}

Test(pwfile, error_salt_not_base64)
{
    expect_error("alice:$6$AQID*AUG$AAAA\n", 1,
                 "user 'alice': salt is not base64 (or longer than 64 bytes)");
    expect_error("alice:$6$\n", 1, "user 'alice': missing '$' between salt and hash");
}

Test(pwfile, error_hash_of_wrong_length)
{
    expect_error("alice:$6$" VEC_SALT "$AQIDBA==\n", 1,
                 "user 'alice': hash is not the base64 of 64 bytes");
}

Test(pwfile, error_extra_field)
{
    expect_error("alice:" VEC6 "$x\n", 1, "user 'alice': extra '$' field after the hash");
}

Test(pwfile, error_duplicate_user_names_both_lines)
{
    expect_error("alice:" VEC6 "\nbob:" VEC6 "\nalice:" VEC7 "\n", 3,
                 "user 'alice' is already defined on line 1");
}

Test(pwfile, error_user_name_too_long)
{
    char text[2048];
    char name[300];
    char msg[400];

    memset(name, 'u', 256);
    name[256] = '\0';
    snprintf(text, sizeof(text), "%s:%s\n", name, VEC6);
    snprintf(msg, sizeof(msg), "user '%.64s...': name longer than 255 bytes", name);
    expect_error(text, 1, msg);
}

Test(pwfile, error_line_too_long)
{
    static char text[4096];

    memset(text, 'a', 2000);
    text[2000] = '\n';
    text[2001] = '\0';
    expect_error(text, 1, "line longer than 1024 bytes");
}

Test(pwfile, error_nul_byte)
{
    FILE *f = fopen(pwpath, "w");
    int sys_errno;

    cr_assert_not_null(f);
    fwrite("alice:\0x\n", 1, 9, f);
    fclose(f);
    cr_assert_null(pwfile_load(pwpath, err, sizeof(err), &sys_errno));
    snprintf(want, sizeof(want), "%s:1: NUL byte in the line", pwpath);
    cr_assert_str_eq(err, want);
}

Test(pwfile, error_missing_file_reports_errno)
{
    int sys_errno = 0;

    cr_assert_null(pwfile_load(pwpath, err, sizeof(err), &sys_errno));
    cr_assert_eq(sys_errno, ENOENT);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", pwpath);
    cr_assert_str_eq(err, want);
}

/* ---- [auth] in the configuration ---- */

static int load_ini(struct config *cfg, const char *text)
{
    write_file(ini, text);
    return config_load(cfg, ini, err, sizeof(err));
}

Test(pwfile, test_config_reports_password_file_lines_as_file_line_problem)
{
    static struct config cfg;
    char text[1024];

    write_file(pwpath, "alice:" VEC6 "\nbob\n");
    snprintf(text, sizeof(text), "[auth]\npassword_file = %s\n", pwpath);
    cr_assert_eq(load_ini(&cfg, text), -1);
    snprintf(want, sizeof(want), "%s:2: expected NAME:HASH (no ':' on the line)", pwpath);
    cr_assert_str_eq(err, want);
}

Test(pwfile, unreadable_password_and_acl_files_point_at_the_key)
{
    static struct config cfg;
    char text[1024];

    snprintf(text, sizeof(text), "[auth]\n\npassword_file = %s/none\n", dir);
    cr_assert_eq(load_ini(&cfg, text), -1);
    snprintf(want, sizeof(want),
             "%s:3: [auth] password_file: cannot read '%s/none': No such file or directory", ini,
             dir);
    cr_assert_str_eq(err, want);

    snprintf(text, sizeof(text), "[auth]\nacl_file = %s\n", dir);
    cr_assert_eq(load_ini(&cfg, text), -1);
    snprintf(want, sizeof(want), "%s:2: [auth] acl_file: cannot read '%s': Is a directory", ini,
             dir);
    cr_assert_str_eq(err, want);
}

Test(pwfile, a_listener_acl_file_is_checked_against_its_own_key)
{
    static struct config cfg;
    char text[1024];

    snprintf(text, sizeof(text), "[listener.a]\nport = 0\nacl_file = %s/none\n", dir);
    cr_assert_eq(load_ini(&cfg, text), -1);
    snprintf(want, sizeof(want),
             "%s:3: [listener.a] acl_file: cannot read '%s/none': No such file or directory", ini,
             dir);
    cr_assert_str_eq(err, want);
}

Test(pwfile, a_bad_acl_file_line_fails_the_load_with_its_line)
{
    static struct config cfg;
    char acl[400];
    char text[1024];

    snprintf(acl, sizeof(acl), "%s/acl", dir);
    write_file(acl, "user alice\ntopic read a/#\ntopic sometimes b\n");
    snprintf(text, sizeof(text), "[auth]\nacl_file = %s\n", acl);
    cr_assert_eq(load_ini(&cfg, text), -1, "the file is read, not just opened");
    cr_assert(strncmp(err, acl, strlen(acl)) == 0 && strncmp(err + strlen(acl), ":3: ", 4) == 0,
              "%s", err);
    unlink(acl);
}

Test(pwfile, listeners_inherit_auth_unless_they_set_their_own)
{
    static struct config cfg;
    char acl[400];
    char text[2048];

    write_file(pwpath, "alice:" VEC6 "\n");
    snprintf(acl, sizeof(acl), "%s/acl", dir);
    write_file(acl, "topic read #\n");
    snprintf(text, sizeof(text),
             "[listener.open]\nport = 0\npassword_file =\n"
             "[listener.locked]\nport = 0\n"
             "[listener.both]\nport = 0\nallow_anonymous = on\n"
             "[auth]\npassword_file = %s\nacl_file = %s\n",
             pwpath, acl);
    cr_assert_eq(load_ini(&cfg, text), 0, "%s", err);
    cr_assert_str_eq(cfg.listeners[0].password_file, "");
    cr_assert_eq(cfg.listeners[0].allow_anonymous, CONFIG_ON, "auto: no password file here");
    cr_assert_str_eq(cfg.listeners[0].acl_file, acl);
    cr_assert_str_eq(cfg.listeners[1].password_file, pwpath);
    cr_assert_eq(cfg.listeners[1].allow_anonymous, CONFIG_OFF, "auto: a password file applies");
    cr_assert_eq(cfg.listeners[2].allow_anonymous, CONFIG_ON);
    cr_assert(cfg.auth.bind_client_id_to_user);
    config_free(&cfg); /* the acl_file's ACL, loaded with it */

    snprintf(text, sizeof(text),
             "[auth]\nallow_anonymous = false\nbind_client_id_to_user = off\n"
             "[listener.x]\nport = 0\n");
    cr_assert_eq(load_ini(&cfg, text), 0, "%s", err);
    cr_assert_eq(cfg.listeners[0].allow_anonymous, CONFIG_OFF);
    cr_assert_not(cfg.auth.bind_client_id_to_user);

    cr_assert_eq(load_ini(&cfg, "[auth]\nallow_anonymous = sometimes\n"), -1);
    snprintf(want, sizeof(want),
             "%s:2: [auth] allow_anonymous: expected auto, true or false, got \"sometimes\"", ini);
    cr_assert_str_eq(err, want);
}

Test(pwfile, snapshot_shares_one_database_per_file)
{
    static struct config cfg;
    struct login_conf *lc;
    char text[1024];

    write_file(pwpath, "alice:" VEC6 "\n");
    snprintf(text, sizeof(text),
             "[auth]\npassword_file = %s\n[listener.a]\nport = 0\n[listener.b]\nport = 0\n"
             "[listener.c]\nport = 0\npassword_file =\n",
             pwpath);
    cr_assert_eq(load_ini(&cfg, text), 0, "%s", err);
    lc = config_login_build(&cfg, err, sizeof(err));
    cr_assert_not_null(lc, "%s", err);
    cr_assert_eq(lc->listener_count, 3);
    cr_assert_not_null(lc->listeners[0].db);
    cr_assert_eq(lc->listeners[0].db, lc->listeners[1].db);
    cr_assert_null(lc->listeners[2].db);
    cr_assert_not(lc->listeners[0].allow_anonymous);
    cr_assert(lc->listeners[2].allow_anonymous);
    cr_assert(verifies(lc->listeners[1].db, "alice", "hunter2"));
    config_login_free(lc);
}

/* ---- tools/ringmq-passwd ---- */

Test(pwfile, ringmq_passwd_round_trip_verifies_with_the_broker_code)
{
    char cmd[4096];
    struct pwdb *db;
    struct stat st;
    FILE *f;
    char line[512];

    /* Create: mode 0600, $7$ with mosquitto_passwd's defaults. */
    snprintf(cmd, sizeof(cmd), "'%s' -c -b '%s' alice first", RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 0);
    cr_assert_eq(stat(pwpath, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    db = load_ok(pwpath);
    cr_assert_eq(db->users[0].hash.kind, PWHASH_PBKDF2_SHA512);
    cr_assert_eq(db->users[0].hash.iterations, 101);
    cr_assert_eq(db->users[0].hash.salt_len, 12);
    cr_assert(verifies(db, "alice", "first"));
    pwfile_free(db);

    /* Add, then update: the other user and the order are kept. */
    snprintf(cmd, sizeof(cmd),
             "'%s' -b '%s' bob 'two words' && '%s' -b '%s' alice second && "
             "'%s' -I 2000 -b '%s' carol third",
             RINGMQ_PASSWD, pwpath, RINGMQ_PASSWD, pwpath, RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 0);
    db = load_ok(pwpath);
    cr_assert_eq(db->count, 3);
    cr_assert(verifies(db, "alice", "second"));
    cr_assert_not(verifies(db, "alice", "first"));
    cr_assert(verifies(db, "bob", "two words"));
    cr_assert(verifies(db, "carol", "third"));
    cr_assert_eq(pwdb_find(db, (const uint8_t *)"carol", 5)->hash.iterations, 2000);
    cr_assert_eq(pwdb_find(db, (const uint8_t *)"alice", 5)->line, 1);
    pwfile_free(db);

    /* Delete. */
    snprintf(cmd, sizeof(cmd), "'%s' -D '%s' bob", RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 0);
    db = load_ok(pwpath);
    cr_assert_eq(db->count, 2);
    cr_assert_null(pwdb_find(db, (const uint8_t *)"bob", 3));
    pwfile_free(db);
    snprintf(cmd, sizeof(cmd), "'%s' -D '%s' bob 2>/dev/null", RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 1, "deleting a user not there fails");

    /* Upgrade a plaintext file; hashed lines and comments are kept. */
    write_file(pwpath, "# staff\ndan:plain:text\nalice:" VEC6 "\n");
    chmod(pwpath, 0640);
    snprintf(cmd, sizeof(cmd), "'%s' -U '%s'", RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 0);
    cr_assert_eq(stat(pwpath, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "an existing file keeps its mode");
    db = load_ok(pwpath);
    cr_assert(verifies(db, "dan", "plain:text"));
    cr_assert(verifies(db, "alice", "hunter2"));
    pwfile_free(db);
    f = fopen(pwpath, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_str_eq(line, "# staff\n");
    fclose(f);

    /* Prompted twice on stdin (no terminal here: nothing to turn echo off on). */
    snprintf(cmd, sizeof(cmd), "printf 'pw one\\npw one\\n' | '%s' '%s' erin 2>/dev/null",
             RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "printf 'a\\nb\\n' | '%s' '%s' erin 2>/dev/null", RINGMQ_PASSWD,
             pwpath);
    cr_assert_eq(run(cmd), 1, "passwords that differ are refused");
    db = load_ok(pwpath);
    cr_assert(verifies(db, "erin", "pw one"));
    pwfile_free(db);

    /* Bad names, and usage errors. */
    snprintf(cmd, sizeof(cmd), "'%s' -b '%s' 'a:b' x 2>/dev/null", RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 1);
    snprintf(cmd, sizeof(cmd), "'%s' -D -b '%s' a x 2>/dev/null", RINGMQ_PASSWD, pwpath);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "'%s' -b '%s/none' a x 2>/dev/null", RINGMQ_PASSWD, dir);
    cr_assert_eq(run(cmd), 1, "without -c the file must exist");
}

Test(pwfile, mosquitto_passwd_reads_what_ringmq_passwd_writes)
{
    char cmd[4096];

    if (access("/usr/bin/mosquitto_passwd", X_OK) != 0) {
        cr_skip_test("Debian's mosquitto_passwd (package mosquitto) is not installed");
    }
    /* mosquitto_passwd -U refuses a file that is already hashed: it parses ours as hashes. */
    snprintf(cmd, sizeof(cmd),
             "'%s' -c -b '%s' alice one && /usr/bin/mosquitto_passwd -b '%s' bob two "
             ">/dev/null 2>&1",
             RINGMQ_PASSWD, pwpath, pwpath);
    cr_assert_eq(run(cmd), 0);
    struct pwdb *db = load_ok(pwpath);
    cr_assert(verifies(db, "alice", "one"));
    cr_assert(verifies(db, "bob", "two"));
    pwfile_free(db);
}

/* --test-config lists every problem: each bad line of a password file, one line each. */
Test(pwfile, every_bad_line_of_a_password_file_is_told_by_the_load)
{
    static struct config cfg;
    char text[1024];
    char two[2 * 400];

    write_file(pwpath, "alice:" VEC6 "\nbob\ncarol:" VEC6 "\ndave:plaintext\n");
    snprintf(text, sizeof(text), "[auth]\npassword_file = %s\n", pwpath);
    cr_assert_eq(load_ini(&cfg, text), -1);
    snprintf(two, sizeof(two),
             "%s:2: expected NAME:HASH (no ':' on the line)\n"
             "%s:4: user 'dave': unknown hash type (expected $6$ or $7$ as mosquitto_passwd "
             "writes) (a plaintext password? ringmq-passwd -U hashes a file)",
             pwpath, pwpath);
    cr_assert_str_eq(err, two);
    /* And by pwfile_load() itself, with duplicates too. */
    int sys_errno = -1;
    write_file(pwpath, "alice:" VEC6 "\nbob\nalice:" VEC6 "\n");
    cr_assert_null(pwfile_load(pwpath, err, sizeof(err), &sys_errno));
    snprintf(two, sizeof(two),
             "%s:2: expected NAME:HASH (no ':' on the line)\n"
             "%s:3: user 'alice' is already defined on line 1",
             pwpath, pwpath);
    cr_assert_str_eq(err, two);
}

Test(pwfile, ringmq_passwd_stores_the_saslprep_form_of_a_password)
{
    char cmd[4096];
    struct pwdb *db;

    /*
     * "I<U+00AD>X" prepares to "IX" (RFC 4013 section 3), what a SCRAM
     * client hashes; an ASCII password is stored as typed. A password
     * SASLprep refuses (U+0007) is kept as typed, with a warning.
     */
    snprintf(cmd, sizeof(cmd),
             "'%s' -c -b '%s' ix \"$(printf 'I\\302\\255X')\" && '%s' -b '%s' bell "
             "\"$(printf 'a\\007b')\" 2>'%s/warn' && grep -q SASLprep '%s/warn'",
             RINGMQ_PASSWD, pwpath, RINGMQ_PASSWD, pwpath, dir, dir);
    cr_assert_eq(run(cmd), 0);
    db = load_ok(pwpath);
    cr_assert(verifies(db, "ix", "IX"));
    cr_assert_not(verifies(db, "ix", "I\xc2\xadX"));
    cr_assert(verifies(db, "bell", "a\ab"));
    pwfile_free(db);
}
