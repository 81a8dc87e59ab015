"""A daemon's command-line flags, derived from its settings model.

Every field of ``NodeSettings`` / ``GatewaySettings`` becomes one option: named after the field
(``--heartbeat-interval-s``) unless the field names a shorter flag (``--data`` for
``data_dir``, see ``core.settings._flag``), typed as the field (a bool as ``--x/--no-x``, or
``--x`` alone when its field says ``negatable: False``), with the field's description
and default as its help. A flag left out is not passed on, so that the environment
(``DISTSTORAGE_NODE_*``, ``DISTSTORAGE_GATEWAY_*``, read by pydantic-settings) and then the
field's default fill it in. A secret field (``core.settings.is_secret``: the root key's secret)
gets no flag at all: argv is readable by every user of the machine, so a secret comes from the
environment or a file only. Typer builds the options from a signature made here, since the
fields are only known at run time.

pydantic-settings' own CLI source (``CliApp``) was not used: it would be a second command-line
framework beside typer, and it names a flag after the field's alias, which would also rename
the field's environment variable.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import typer
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from diststorage.core.settings import is_secret

S = TypeVar("S", bound=BaseSettings)

CONTEXT = "ctx"

# Metavars from the unit a field's name ends in, longest first.
_UNIT_METAVARS = (("_bytes_per_s", "BYTES_PER_S"), ("_bytes", "BYTES"), ("_s", "SECONDS"))


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def has_flag(field: FieldInfo) -> bool:
    """Whether the field is given a flag: every field but the secret ones."""
    return not is_secret(field.json_schema_extra)


def flag_name(name: str, field: FieldInfo) -> str:
    """The flag of settings field ``name``, without its dashes."""
    return str(_extra(field).get("flag", name.replace("_", "-")))


def _value_type(field: FieldInfo) -> type[Any]:
    """The field's type without ``None``; a ``tuple[X, ...]`` stays a tuple (repeatable)."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    assert isinstance(annotation, type) or get_origin(annotation) is tuple, annotation
    return annotation  # type: ignore[return-value]


def _metavar(name: str, field: FieldInfo) -> str | None:
    given = _extra(field).get("metavar")
    if given is not None:
        return str(given)
    for suffix, metavar in _UNIT_METAVARS:
        if name.endswith(suffix):
            return metavar
    return None


def _shown(default: object) -> str:
    if isinstance(default, tuple):
        return " ".join(map(str, default)) or "none"
    return str(default)


def _option(name: str, field: FieldInfo) -> inspect.Parameter:
    flag = flag_name(name, field)
    value_type = _value_type(field)
    help_text = str(field.description)
    if field.default is not None:
        help_text += f" (default: {_shown(field.default)})"
    if value_type is bool and _extra(field).get("negatable", True):
        option = typer.Option(f"--{flag}/--no-{flag}", help=help_text)
    elif value_type is bool:
        option = typer.Option(f"--{flag}", help=help_text)
    else:
        option = typer.Option(f"--{flag}", help=help_text, metavar=_metavar(name, field))
    # A tuple field is a repeatable flag; every flag defaults to "not given".
    given_as: Any = list[str] if get_origin(value_type) is tuple else value_type
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[given_as | None, option],
    )


def settings_command(
    model: type[S],
    run: Callable[[S], None],
    doc: str,
    fields: Iterable[str] | None = None,
    with_subcommands: bool = False,
) -> Callable[..., None]:
    """A typer command (or, ``with_subcommands``, a group callback that runs only when no
    subcommand was given) with one flag per field of ``model`` (or of ``fields``) but the
    secret ones, which
    builds the settings from the flags given and hands them to ``run``.

    Raises pydantic's ``ValidationError`` when a value does not fit its field."""
    names = list(fields) if fields is not None else list(model.model_fields)
    names = [name for name in names if has_flag(model.model_fields[name])]
    parameters = [_option(name, model.model_fields[name]) for name in names]
    if with_subcommands:
        context = inspect.Parameter(
            CONTEXT, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
        )
        parameters.insert(0, context)

    def command(**values: Any) -> None:
        context: typer.Context | None = values.pop(CONTEXT, None)
        if context is not None and context.invoked_subcommand is not None:
            return
        given: dict[str, Any] = {
            name: tuple(value) if isinstance(value, list | tuple) else value
            for name, value in values.items()
            if value is not None and value not in ([], ())
        }
        run(model(**given))

    command.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    command.__doc__ = doc
    command.__name__ = model.__name__
    return command
