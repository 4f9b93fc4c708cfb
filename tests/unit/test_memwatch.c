/*
 * test_memwatch.c - net/memwatch: parsing /proc/self/statm, the pressure
 * level's hysteresis, the "auto" budget, and one real sample of this
 * process.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "net/memwatch.h"


Test(memwatch, parses_the_resident_pages_of_statm)
{
    static const char text[] = "31234 2048 512 100 0 4000 0\n";
    uint64_t rss = 0;

    cr_assert_eq(memwatch_parse_statm(text, strlen(text), 4096, &rss), 0);
    cr_assert_eq(rss, 2048ull * 4096);
    cr_assert_eq(memwatch_parse_statm("1 7", 3, 65536, &rss), 0, "no terminator needed");
    cr_assert_eq(rss, 7ull * 65536);
    cr_assert_eq(memwatch_parse_statm("", 0, 4096, &rss), -EINVAL);
    cr_assert_eq(memwatch_parse_statm("12", 2, 4096, &rss), -EINVAL);
    cr_assert_eq(memwatch_parse_statm("12 x", 4, 4096, &rss), -EINVAL);
    cr_assert_eq(memwatch_parse_statm("12 3x", 5, 4096, &rss), -EINVAL);
    cr_assert_eq(memwatch_parse_statm("1 99999999999999999999", 22, 4096, &rss), -EINVAL);
    cr_assert_eq(memwatch_parse_statm("1 18014398509481984", 19, 4096, &rss), -EINVAL,
                 "pages x page size overflows");
}

Test(memwatch, pressure_starts_at_90_percent_and_ends_under_85)
{
    const uint64_t budget = 1000ull << 20;

    cr_assert_not(memwatch_pressure(budget / 100 * 89, budget, false));
    cr_assert(memwatch_pressure(budget / 100 * 90, budget, false));
    cr_assert(memwatch_pressure(budget * 2, budget, false));
    /* Once on, it stays on down to 85 %. */
    cr_assert(memwatch_pressure(budget / 100 * 89, budget, true));
    cr_assert(memwatch_pressure(budget / 100 * 85, budget, true));
    cr_assert_not(memwatch_pressure(budget / 100 * 84, budget, true));
}

Test(memwatch, auto_budget_is_half_of_the_lower_of_memory_and_cgroup)
{
    cr_assert_eq(memwatch_budget_of(16ull << 30, 0), 8ull << 30);
    cr_assert_eq(memwatch_budget_of(16ull << 30, 2ull << 30), 1ull << 30);
    cr_assert_eq(memwatch_budget_of(16ull << 30, 64ull << 30), 8ull << 30);
    cr_assert_eq(memwatch_budget_of(0, 2ull << 30), 1ull << 30);
}

Test(memwatch, this_host_has_a_budget_and_a_resident_set)
{
    uint64_t phys = 0;
    uint64_t cgroup = 0;
    uint64_t rss = 0;
    uint64_t budget = memwatch_auto_budget(&phys, &cgroup);
    int fd = memwatch_open();

    cr_assert_gt(phys, 0);
    cr_assert(budget > 0 && budget <= phys / 2);
    cr_assert_geq(fd, 0);
    cr_assert_eq(memwatch_rss(fd, &rss), 0);
    cr_assert(rss > 0 && rss < phys, "rss %llu", (unsigned long long)rss);
    close(fd);
}
