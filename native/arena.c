/*
 * arena.c - a fixed-address shared mapping for a served worker's plan (see api.h).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "pyrt.h"

int pyrt_map_at(int32_t fd, size_t len, uint64_t addr)
{
    void *want = (void *)(uintptr_t)addr;
    void *got = mmap(want, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);

    if (got == MAP_FAILED)
        return -errno;
    if (got != want) { /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
        munmap(got, len);
        return -EEXIST;
    }
    return 0;
}
