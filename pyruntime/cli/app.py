"""The click application, built from table.py: help, completion and usage errors for people.

It is imported only when the lean parser declines argv (help, --version, a mistake), so
the per-container verbs never pay for click's import.
"""

from __future__ import annotations

import click

from pyruntime import SPEC_VERSION, __version__
from pyruntime.cli.table import GLOBAL_OPTIONS, GROUPS, INT_RANGE, VERBS, Arg, Opt, Verb


def _option(opt: Opt) -> click.Option:
    kwargs: dict = {"help": opt.help, "show_default": opt.kind != "flag" and bool(opt.default)}
    if opt.kind == "flag":
        kwargs["is_flag"] = True
    elif opt.kind == "int":
        kwargs["type"] = click.IntRange(*INT_RANGE)
    elif opt.kind == "multi":
        kwargs["multiple"] = True
    if opt.choices:
        kwargs["type"] = click.Choice(opt.choices)
    return click.Option([*opt.names, opt.dest], default=opt.default, **kwargs)


def _argument(arg: Arg) -> click.Argument:
    if arg.nargs == "*":
        return click.Argument([arg.name], nargs=-1)
    return click.Argument([arg.name], required=arg.nargs == 1)


def _command(verb: Verb, sink: dict) -> click.Command:
    def callback(**values: object) -> None:
        for arg in verb.args:
            if arg.nargs == "*":
                values[arg.name] = list(values[arg.name])  # type: ignore[arg-type]
        for opt in verb.options:
            if opt.kind == "multi":  # click gives a tuple, the lean parser a list
                values[opt.dest] = list(values[opt.dest])  # type: ignore[arg-type]
        sink["verb"] = verb
        sink["values"] = values

    return click.Command(
        verb.name.rpartition(" ")[2], callback=callback, help=verb.help,
        params=[_option(o) for o in verb.options] + [_argument(a) for a in verb.args],
        # options may follow positionals (`image inspect NAME --format json`), except where
        # the positionals end in a command line of the container's own (`exec ID ls -l`)
        context_settings={"allow_interspersed_args": not any(a.nargs == "*" for a in verb.args),
                          "help_option_names": ["-h", "--help"]},
    )


def build_app(sink: dict) -> click.Group:
    """The click group; parsing fills `sink` with the verb and values instead of running."""

    def group_callback(**values: object) -> None:
        sink["globals"] = values

    group = click.Group(
        "pyruntime", callback=group_callback,
        params=[_option(o) for o in GLOBAL_OPTIONS],
        help="pyruntime: an OCI container runtime (runc-compatible command line).",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    group.params.append(click.Option(
        ["-v", "--version"], is_flag=True, expose_value=False, is_eager=True,
        callback=_print_version, help="print the version"))
    groups = {name: click.Group(name, help=text, context_settings=group.context_settings)
              for name, text in GROUPS.items()}
    for name, sub in groups.items():
        group.add_command(sub, name)
    for verb in VERBS.values():
        first, _, _ = verb.name.rpartition(" ")
        (groups[first] if first else group).add_command(_command(verb, sink))
    return group


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"pyruntime version {__version__}\nspec: {SPEC_VERSION}")
        ctx.exit(0)


def parse_with_click(argv: list[str]) -> tuple[dict, Verb, dict] | int:
    """Parse argv with click; return (globals, verb, values), or an exit code to stop with."""
    sink: dict = {}
    app = build_app(sink)
    try:
        app.main(argv, prog_name="pyruntime", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        import sys

        sys.stderr.write(f"pyruntime: {e.format_message()}\n")  # one line, like every error
        _log_usage_error(argv, e.format_message())
        return 1  # runc's exit status for a usage error (click's own is 2)
    except click.exceptions.Abort:
        return 1
    if "verb" not in sink:
        return 0  # help was printed
    return sink["globals"], sink["verb"], sink["values"]


def _log_usage_error(argv: list[str], message: str) -> None:
    """A usage error goes to the --log file too: containerd reads a failed verb's message
    there (e.g. a verb this runtime lacks), and says "unable to retrieve OCI runtime error"
    without it."""
    takes_value = {n for o in GLOBAL_OPTIONS if o.kind != "flag" for n in o.names}
    values: dict = {"log": None, "log_format": "text"}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # global options come before the verb
        name, eq, inline = argv[i].partition("=")
        value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
        if name in ("--log", "--log-format"):
            values[name[2:].replace("-", "_")] = value
        i += 1 if eq or name not in takes_value else 2
    if values["log"]:
        from pyruntime.logs import Log

        try:
            Log(values["log"], values["log_format"] or "text").error(message)
        except OSError:
            pass


def run_click(argv: list[str]) -> int:
    result = parse_with_click(argv)
    if isinstance(result, int):
        return result
    from pyruntime.cli.main import dispatch

    g, verb, values = result
    return dispatch(g, verb.name, verb.handler, values)
