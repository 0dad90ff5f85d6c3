"""Whether CRIU works on this kernel: the tests marked criu need it (the lane's has it)."""

from pyruntime.criu.probe import criu_does_not_work

__all__ = ["criu_does_not_work"]
