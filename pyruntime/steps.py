"""Run a verb as an ordered list of steps, each with the undo of what it made.

A verb that makes several things (a state dir, cgroups, a process) must leave none of
them when it fails: `run` does the steps in order and, on any exception (KeyboardInterrupt
and SystemExit too), runs the undos of the steps that completed, last first.  A step's undo
is not run when the step itself fails: a step that can fail halfway cleans up its own half.
An undo that fails is reported and the others still run; the step's error propagates.

A SIGKILL runs no undo: that is what the provisional record is for (pyruntime/leftover.py).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


class Step:
    """One step: `do` makes something, `undo` (None: nothing to take back) removes it."""

    __slots__ = ("do", "name", "undo")

    def __init__(self, name: str, do: Callable[[], object],
                 undo: Callable[[], object] | None = None) -> None:
        self.name = name
        self.do = do
        self.undo = undo

    def __repr__(self) -> str:
        return f"Step({self.name!r})"


def run(steps: Iterable[Step],
        report: Callable[[str, BaseException], None] | None = None) -> None:
    """Do each step in order; on an exception, undo the completed ones in reverse and
    re-raise it.  `report(step name, exception)` hears of each undo that failed; without
    it, the failure is added as a note to the exception that propagates."""
    done: list[Step] = []
    try:
        for step in steps:
            step.do()
            done.append(step)
    except BaseException as error:
        unwind(done, error, report)
        raise


def unwind(done: list[Step], error: BaseException,
           report: Callable[[str, BaseException], None] | None = None) -> None:
    """Run the undos of `done` last first; none of their failures stops the rest."""
    for step in reversed(done):
        if step.undo is None:
            continue
        try:
            step.undo()
        except BaseException as e:  # reported; the step's error is the one raised
            if report is not None:
                report(step.name, e)
            else:
                error.add_note(f"undo of {step.name} failed too: {e}")
