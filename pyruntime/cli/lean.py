"""A small argv parser for the table, with no click: the per-container hot path.

It handles exactly the shapes clients send (global options, verb or "group verb",
`--opt value`, `--opt=value`, short options, `--`), options before positionals as runc's
CLI has them. Anything else (help, a mistake) returns None, and main.py hands argv to
click, which prints the usage error a person expects.
"""

from __future__ import annotations

from pyruntime.cli.table import GLOBAL_OPTIONS, GROUPS, INT_RANGE, VERBS, Opt, Verb


class Parsed:
    """The parse result: global options, the verb, and its options and positionals."""

    __slots__ = ("globals", "verb", "values")

    def __init__(self, globals: dict, verb: Verb, values: dict) -> None:
        self.globals = globals
        self.verb = verb
        self.values = values


def _index(options: tuple[Opt, ...]) -> dict[str, Opt]:
    return {name: opt for opt in options for name in opt.names}


_GLOBAL_INDEX = _index(GLOBAL_OPTIONS)
_HELP = frozenset(("-h", "--help", "--version", "-v"))


def _take(argv: list[str], i: int, index: dict[str, Opt], values: dict) -> int | None:
    """Consume the option at argv[i]; return the next index, or None if it is not ours."""
    token = argv[i]
    # "--opt=value"; a short option's "-f=x" means the value "=x" to click: decline it.
    # "-opt" is "--opt", as Go's flag package reads it (containerd's go-runc sends
    # "-no-subreaper" to restore)
    if not token.startswith("--") and len(token) > 2 and "-" + token.partition("=")[0] in index:
        token = "-" + token
    name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
    opt = index.get(name)
    if opt is None:
        return None
    if opt.kind == "flag":
        if eq:
            return None
        values[opt.dest] = True
        return i + 1
    if eq:
        value = inline
    elif i + 1 < len(argv):
        value = argv[i + 1]
        i += 1
    else:
        return None
    if opt.choices is not None and value not in opt.choices:
        return None
    if opt.kind == "int":
        if not value.lstrip("-").isdigit() or not INT_RANGE[0] <= int(value) <= INT_RANGE[1]:
            return None  # click says what is wrong
        values[opt.dest] = int(value)
    elif opt.kind == "multi":
        values[opt.dest].append(value)
    else:
        values[opt.dest] = value
    return i + 1


def parse(argv: list[str]) -> Parsed | None:
    """Parse argv (without the program name); None means: let click handle it."""
    g = {opt.dest: opt.default for opt in GLOBAL_OPTIONS}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in _HELP:
            return None
        nxt = _take(argv, i, _GLOBAL_INDEX, g)
        if nxt is None:
            return None
        i = nxt
    if i >= len(argv):
        return None
    name = argv[i]
    if name in GROUPS and i + 1 < len(argv):  # a two-word verb: "image load"
        i += 1
        name = f"{name} {argv[i]}"
    if name not in VERBS:
        return None
    verb = VERBS[name]
    i += 1
    index = _index(verb.options)
    values: dict = {opt.dest: list(opt.default) if opt.kind == "multi" else opt.default
                    for opt in verb.options}
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i] == "--":
            i += 1
            break
        if argv[i] in _HELP:
            return None
        nxt = _take(argv, i, index, values)
        if nxt is None:
            return None
        i = nxt
    rest = argv[i:]
    for arg in verb.args:
        if arg.nargs == "*":
            values[arg.name] = rest
            rest = []
        elif arg.nargs == "?":
            values[arg.name] = rest.pop(0) if rest else None
        elif rest:
            values[arg.name] = rest.pop(0)
        else:
            return None
    if rest:
        return None
    return Parsed(g, verb, values)
