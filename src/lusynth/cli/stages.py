"""One ``lusynth`` command per row of the stage table (:data:`lusynth.stages.STAGES`).

Nothing here is written per stage: a command's flags are the stage's input artefacts, its task
key fields (``--label``/``--fraction``, ``--arm``/``--fraction``/``--seed``), its run options, and
one flag per field of each parameter dataclass it reads (help from the field's comment; a name
another section already uses gets the section as prefix, e.g. ``--phantom-seed``). Every
parameter flag defaults to "the profile's value"; ``--set section.key=value`` reaches any field
and ``--params-file`` reads per-section overrides from YAML (DVC's ``params.yaml``). Runtime
switches (``--device``, ``--threads``, ``--no-track``, ``--quiet``, ``--cache``) are not
hyperparameters and go to the run context.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, cast

import typer

from lusynth.cli import app
from lusynth.params import field_choices, field_help, merge_overrides, parse_assignments, read_params_file, section_class
from lusynth.stages import STAGES, Stage

#: the run context's switches (lusynth.runtime.RunContext): one flag each, shared by every command;
#: no parameter section may hold them (tests/pipeline/test_stage_table.py)
RUNTIME_FIELDS = ("device", "threads", "track")


@dataclass(frozen=True)
class Flag:
    """One generated command-line parameter and where its value goes."""

    dest: str  # "input" | "key" | "option" | "param" | "run"
    name: str  # input/key/option name, or field name
    section: str | None
    parameter: inspect.Parameter


def _dashes(name: str) -> str:
    return "--" + name.replace("_", "-")


def _param_type(hint: Any) -> Any:
    """The type a flag parses to: lists are comma-separated text, parsed by lusynth.params."""
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return Optional[str]
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _param_type(args[0]) if len(args) == 1 else Optional[str]
    if hint in (int, float, str, bool):
        return Optional[hint]
    return Optional[str]


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "''"
    return "''" if value == "" else str(value)


def _flag(dest: str, name: str, section: str | None, annotation: Any, info: Any) -> Flag:
    ident = f"{dest}__{section + '__' if section else ''}{name}"
    return Flag(dest, name, section, inspect.Parameter(ident, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation))


def section_flags(sections: tuple[str, ...], used: set[str]) -> list[Flag]:
    """One flag per field of each section's dataclass (runtime fields excepted); a flag name
    already in ``used`` gets the section as prefix. ``used`` is updated."""
    flags = []
    for section in sections:
        cls = section_class(section)
        hints, helps, choices = typing.get_type_hints(cls), field_help(cls), field_choices(cls)
        for f in dataclasses.fields(cls):
            if f.name in RUNTIME_FIELDS:
                continue
            flag = _dashes(f.name) if _dashes(f.name) not in used else _dashes(f"{section}_{f.name}")
            default = f.default if f.default is not dataclasses.MISSING else cast(Callable[[], Any], f.default_factory)()
            text = helps.get(f.name, "")
            if f.name in choices:
                text += f" One of: {', '.join(map(str, choices[f.name]))}."
            text += f" ({section}.{f.name}; default: the profile's, demo {_show(default)})"
            hint = hints[f.name]
            decls = (f"{flag}/--no-{flag[2:]}",) if hint is bool else (flag,)
            used.add(flag)
            flags.append(_flag("param", f.name, section, _param_type(hint), typer.Option(None, *decls, help=text.strip(), show_default=False)))
    return flags


def stage_flags(row: Stage) -> list[Flag]:
    """The flags of ``row``'s command, in help order."""
    flags: list[Flag] = []
    used: set[str] = {"--out", "--profile", "--set", "--params-file", "--quiet", "--cache", "--no-cache", "--no-track",
                      "--device", "--threads", "--force", "-o", "-q"}

    def add(dest: str, name: str, section: str | None, annotation: Any, info: Any, decls: tuple[str, ...]) -> None:
        used.update(decls)
        flags.append(_flag(dest, name, section, annotation, info))

    for o in row.options:
        if o.argument:
            add("option", o.name, None, Optional[o.type], typer.Argument(None, metavar=o.name.upper(), help=o.help), ())
        else:
            decls = (_dashes(o.name),) if o.type is not bool else (f"{_dashes(o.name)}/--no-{o.name.replace('_', '-')}",)
            add("option", o.name, None, o.type if o.type is bool else Optional[o.type],
                typer.Option(o.default, *decls, help=o.help, envvar=o.envvar), (_dashes(o.name),))
    for i in row.inputs:
        annotation = Optional[list[Path]] if i.many else Optional[Path]
        default = ... if i.required else None
        add("input", i.name, None, annotation, typer.Option(default, *i.flags, help=i.help), i.flags)
    key_cls = row.key_class()
    if key_cls is not None:
        hints = typing.get_type_hints(key_cls)
        for f in dataclasses.fields(key_cls):
            # fields with a default (GAN seed, ratio, fold) may be left out: the single-split, one-seed run
            default = ... if f.default is dataclasses.MISSING else f.default
            add("key", f.name, None, hints[f.name], typer.Option(default, _dashes(f.name), help=f"Task key: {f.name} of the {key_cls.__name__}."),
                (_dashes(f.name),))
    flags += section_flags(tuple(s for s in row.sections if s not in row.set_only), used)
    return flags


_COMMON = [
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                      default=typer.Option(..., "--out", "-o", help="Output directory of this stage (written atomically).")),
    inspect.Parameter("profile", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                      default=typer.Option("demo", "--profile", help="Parameter profile (lusynth/profiles.yaml): demo | paper | tiny.")),
    inspect.Parameter("assignments", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[list[str]],
                      default=typer.Option(None, "--set", help="Override any parameter: SECTION.KEY=VALUE (repeat).")),
    inspect.Parameter("params_file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                      default=typer.Option(None, "--params-file", help="YAML with per-section overrides (e.g. DVC's params.yaml).")),
    inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                      default=typer.Option(None, "--device", help="auto | cpu | cuda[:i] (default: the stage's).")),
    inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[int],
                      default=typer.Option(None, "--threads", help="Torch CPU threads; 0 = the CPU quota (default: the stage's).")),
    inspect.Parameter("no_track", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--no-track", help="Do not log to MLflow.")),
    inspect.Parameter("cache", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--cache/--no-cache", help="Restore an identical earlier output from the stage cache.")),
    inspect.Parameter("force", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--force", help="Replace --out even when no run of this stage wrote it "
                                                                  "(never the source or a folder containing it).")),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")),
]


def set_signature(command: Any, params: list[inspect.Parameter], *, name: str, doc: str) -> Any:
    """Give ``command(**values)`` the typer signature ``params``."""
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    command.__name__ = name
    return command


def overrides_from(flags: list[Flag], values: dict[str, Any], assignments: list[str] | None, params_file: Path | None) -> dict[str, dict[str, Any]]:
    """Per-section overrides: the params file, then ``--set``, then the dedicated flags."""
    from_flags: dict[str, dict[str, Any]] = {}
    for f in flags:
        if f.dest == "param" and values.get(f.parameter.name) is not None:
            from_flags.setdefault(str(f.section), {})[f.name] = values[f.parameter.name]
    return merge_overrides(read_params_file(params_file) if params_file else None, parse_assignments(assignments or ()), from_flags)


def _make_command(row: Stage) -> Any:
    flags = stage_flags(row)

    def command(**values: Any) -> None:
        from lusynth.runtime import RunContext
        from lusynth.stages import run_stage

        overrides = overrides_from(flags, values, values.get("assignments"), values.get("params_file"))
        inputs = {f.name: values[f.parameter.name] for f in flags if f.dest == "input"}
        key = {f.name: values[f.parameter.name] for f in flags if f.dest == "key"} or None
        options = {f.name: values[f.parameter.name] for f in flags if f.dest == "option"}
        ctx = RunContext(track=not values["no_track"], device=values["device"], threads=values["threads"],
                         progress=not values["quiet"], cache=values["cache"], force=values["force"])
        outcome = run_stage(row.name, values["out"], inputs=inputs, key=key, profile=values["profile"], overrides=overrides,
                            options=options, ctx=ctx)
        if not values["quiet"]:
            _echo_summary(row, outcome, options)

    is_argument = [isinstance(f.parameter.default, typer.models.ArgumentInfo) for f in flags]
    params = [f.parameter for f, a in zip(flags, is_argument, strict=True) if a] + _COMMON[:1]
    params += [f.parameter for f, a in zip(flags, is_argument, strict=True) if not a] + _COMMON[1:]
    return set_signature(command, params, name=row.name, doc=row.help)


def _echo_summary(row: Stage, outcome: Any, options: dict[str, Any]) -> None:
    if row.name == "ingest":  # the store's report: every input accounted for
        from lusynth.data.ingest_report import IngestReport

        report = Path(options.get("report") or outcome.out.with_name(outcome.out.name + "-report"))
        typer.echo(IngestReport.load(report).summary() + f"frame store: {outcome.out}\nreport:      {report}")
        return
    typer.echo(outcome.artefact.summary())


for _row in STAGES:
    app.command(_row.command, help=_row.help)(_make_command(_row))
