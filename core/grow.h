/*
 * grow.h - room for one more element in a growable array (doubling, from
 * GROW_FIRST), for the rooms that keep their own arrays of records.
 * Pure; any thread, on its own arrays.
 */
#ifndef RINGMQ_GROW_H
#define RINGMQ_GROW_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define GROW_FIRST 4u

/*
 * *@arr holds @count of *@cap elements of @elem bytes: make room for one
 * more. Returns 0, or -ENOMEM with *@arr and *@cap unchanged.
 */
static inline int grow_array(void **arr, uint32_t *cap, uint32_t count, size_t elem)
{
    if (count < *cap)
        return 0;
    if (*cap > UINT32_MAX / 2)
        return -ENOMEM;
    uint32_t ncap = *cap ? *cap * 2 : GROW_FIRST;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

#endif
