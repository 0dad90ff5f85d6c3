"""A struct pyrt_plan the client can use as is: laid out in a memfd mapped at a fixed
address, which the client maps at the same address, so every pointer in it holds there.

cffi allocates through `Arena.new` (ffi.new_allocator) exactly as through ffi.new.  The
address range is far below where Linux puts mmaps, stacks and PIE binaries (0x55.. to
0x7f..), so the client's MAP_FIXED_NOREPLACE finds it free; each arena of a worker takes
the next slot.  Arenas live until the worker exits (the plan is used until then).
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure

BASE = 0x2000_0000_0000
SIZE = 64 << 20  # sparse: only what the plan uses is ever touched
_slots = 0


class Arena:
    def __init__(self, ffi, lib) -> None:  # the cffi module
        global _slots
        self.base = BASE + _slots * SIZE
        self.fd = os.memfd_create("pyruntime-plan", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, SIZE)
        rc = lib.pyrt_map_at(self.fd, SIZE, self.base)
        if rc < 0:
            os.close(self.fd)
            raise Failure(f"served spawn: mapping the plan at {self.base:#x}: "
                          f"{os.strerror(-rc)}")
        _slots += 1
        self._ffi = ffi
        self._next = self.base
        self.new = ffi.new_allocator(alloc=self._alloc, free=None,
                                     should_clear_after_alloc=False)

    def _alloc(self, size: int):  # a cffi void *
        start = (self._next + 15) & ~15
        if start + size > self.base + SIZE:
            raise MemoryError("served spawn: the plan does not fit its arena")
        self._next = start + size
        return self._ffi.cast("void *", start)

    def address(self, cdata) -> int:
        return int(self._ffi.cast("uintptr_t", cdata))
