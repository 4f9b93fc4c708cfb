/*
 * alloc_fault.c - allocation failure for the whole broker: linked into
 * ringmq_allocfail (tests/faults/CMakeLists.txt) with -Wl,--wrap for malloc,
 * calloc and realloc, so every allocation made by ringmq's own code (core/,
 * net/, config/, tls/; not wolfSSL's or libc's own) comes through here.
 *
 * Nothing fails until the process gets SIGUSR2 (the test sends it once the
 * broker listens): from then on allocations are counted, and with
 * RINGMQ_ALLOC_FAIL_AT=N the N-th one fails, until the next SIGUSR2 (the
 * test's session is over; what follows checks the broker still serves). At exit it prints to stderr
 *   alloc_fault: A allocations armed, failed #N    (or "failed none")
 * so the driver can count a scripted session's allocations and check that
 * the one it chose did fail.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static atomic_bool armed;
static atomic_uint_fast64_t count;
static uint64_t fail_at;
static atomic_bool failed;

static void on_usr2(int sig)
{
    (void)sig;
    atomic_store(&armed, !atomic_load(&armed));
}

static void report(void)
{
    char line[96];
    int n = snprintf(line, sizeof(line), "alloc_fault: %llu allocations armed, failed %s%llu\n",
                     (unsigned long long)atomic_load(&count), atomic_load(&failed) ? "#" : "none ",
                     (unsigned long long)(atomic_load(&failed) ? fail_at : 0));
    if (n > 0)
        fputs(line, stderr);
}

__attribute__((constructor)) static void alloc_fault_init(void)
{
    const char *at = getenv("RINGMQ_ALLOC_FAIL_AT");
    char *end = NULL;
    if (at && *at) {
        unsigned long long v = strtoull(at, &end, 10);
        if (*end == '\0')
            fail_at = v;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    atexit(report);
}

static int fail_now(void)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed))
        return 0;
    uint64_t n = atomic_fetch_add(&count, 1) + 1;
    if (fail_at == 0 || n != fail_at)
        return 0;
    atomic_store(&failed, true);
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}
