"""The configuration reference (``docs/configuration.md``), generated from the config models.

:func:`render` walks :class:`bot.config.SlabotConfig`: every section, key, type,
default and description, and the environment variable that overrides the key.
The variable is found by asking :func:`bot.config.env_overrides` itself
whether it takes the name, so the reference says what the loader does, not
what it was meant to do. ``slabot config reference`` (:mod:`bot.cli.config`)
prints the text, and a test fails when ``docs/configuration.md`` differs from it.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bot.config import ENV_PREFIX, SlabotConfig, env_overrides

DOC_PATH = "docs/configuration.md"
REGENERATE = f".venv/bin/slabot config reference > {DOC_PATH}"

_HEADER = f"""\
# Configuration reference

<!-- Generated from the models in bot/config.py by `slabot config reference`; do not edit by hand.
     Regenerate with: {REGENERATE} -->

slabot reads one TOML file: `--config PATH`, else `$SLABOT_CONFIG`, else
`config.toml` in the working directory, else the embedded defaults (every key
below has a default, so no file at all is a valid configuration).
`config.example.toml` is an annotated example. The file is checked strictly: an
unknown key, a wrong type or a value out of range stops slabot at start with
one line per problem (file, dotted key, what was expected, what was found) and
exit code 2. `slabot config check [PATH]` validates a file and shows what it
resolves to, secrets masked, and which keys came from the environment.

A key can also come from the environment variable in the table
(`SLABOT_<SECTION>_<KEY>`), which wins over the file: use it for the secrets.
A key marked "file only" cannot. An empty value unsets an optional string
key (`SLABOT_TELEGRAM_TOKEN=` runs a process without the staff chat).

This page is generated from the models in `bot/config.py`; a test fails when
it differs from them. After changing a key, regenerate it with
`{REGENERATE}`.
"""


def render() -> str:
    """The whole reference as Markdown."""
    lines = [_HEADER]
    top = [(name, field) for name, field in SlabotConfig.model_fields.items() if _section_model(field) is None]
    lines += ["## Top level", "", "Keys at the top of the file, before any `[section]`.", ""]
    lines += _table(None, top)
    for name, field in SlabotConfig.model_fields.items():
        model = _section_model(field)
        if model is not None:
            lines += _section(f"[{name}]", name, model)
        elif _table_model(field) is not None:  # a list of tables at the top: [[webhooks]]
            lines += _section(f"[[{name}]]", "", _table_model(field))  # type: ignore[arg-type]
    return "\n".join(lines).rstrip("\n") + "\n"


def undescribed() -> list[str]:
    """Dotted keys whose model field has no description (the reference would show an empty cell)."""
    missing = []
    for dotted, field in _walk(SlabotConfig, ""):
        if not (field.description or "").strip():
            missing.append(dotted)
    return missing


# -- walking the models --------------------------------------------------------------------------


def _section_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _table_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a list of tables (``[[dashboard.users]]``), or None."""
    annotation = _without_none(field.annotation)[0]
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        nested = _section_model(field) or _table_model(field)
        if nested is not None:
            yield from _walk(nested, f"{dotted}.")
        else:
            yield dotted, field


def _section(title: str, section: str, model: type[BaseModel]) -> list[str]:
    lines = [f"## `{title}`", ""]
    doc = _docstring(model)
    if doc:
        lines += [doc, ""]
    lines += _table(section, list(model.model_fields.items()))
    for name, field in model.model_fields.items():
        nested = _table_model(field)
        if nested is not None:
            lines += ["#" + line if line.startswith("## ") else line
                      for line in _section(f"[[{section}.{name}]]", "", nested)]
    return lines


def _table(section: str | None, fields: list[tuple[str, FieldInfo]]) -> list[str]:
    rows = ["| key | type | default | environment | description |", "|---|---|---|---|---|"]
    for name, field in fields:
        rows.append("| " + " | ".join((
            f"`{name}`", _type(field), _default(field), _environment(section, name, field),
            _cell(field.description or ""),
        )) + " |")
    return [*rows, ""]


# -- one key ----------------------------------------------------------------------------------


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None``, and whether ``None`` was allowed."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return annotation, False


_NAMES = {str: ("string", "strings"), int: ("integer", "integers"), float: ("number", "numbers"),
          bool: ("true or false", "booleans"), SecretStr: ("string, secret", "secret strings")}


def _type_name(annotation: Any, plural: bool = False) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        values = [f"`{v}`" for v in get_args(annotation)]
        return "one of " + ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
    if origin is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "list of tables"
        return f"list of {_type_name(item, plural=True)}"
    if origin is dict:
        return f"table of {_type_name(get_args(annotation)[1], plural=True)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation in _NAMES:
        return _NAMES[annotation][1 if plural else 0]
    return str(annotation)


def _type(field: FieldInfo) -> str:
    annotation, optional = _without_none(field.annotation)
    text = _type_name(annotation)
    bounds = {type(m): m for m in field.metadata}
    low = f">= {bounds[Ge].ge}" if Ge in bounds else f"> {bounds[Gt].gt}" if Gt in bounds else None
    high = f"<= {bounds[Le].le}" if Le in bounds else f"< {bounds[Lt].lt}" if Lt in bounds else None
    if Ge in bounds and Le in bounds:
        text += f", {bounds[Ge].ge} to {bounds[Le].le}"
    elif low or high:
        text += ", " + " and ".join(x for x in (low, high) if x)
    if MinLen in bounds or MaxLen in bounds:
        low_len = bounds[MinLen].min_length if MinLen in bounds else 0
        text += f", {low_len} to {bounds[MaxLen].max_length} characters" if MaxLen in bounds else \
            f", at least {low_len} characters"
    return text + (", optional" if optional else "")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{_toml(value)}`"


def _environment(section: str | None, key: str, field: FieldInfo) -> str:
    """The variable :func:`bot.config.env_overrides` reads for the key, or "file only"."""
    if section == "":  # a key of a list of tables
        return "file only"
    name = f"{ENV_PREFIX}{section.upper()}_{key.upper()}" if section else f"{ENV_PREFIX}{key.upper()}"
    merged, used = env_overrides({}, {name: "a,b"})
    if name not in used:
        return "file only"
    taken = merged[section][key] if section else merged[key]
    annotation = _without_none(field.annotation)[0]
    if isinstance(taken, list):
        return f"`{name}` (comma-separated)"
    if get_origin(annotation) in (dict, list):
        return "file only"  # the variable is read, but a string is not a table or a list
    return f"`{name}`"


# -- text ------------------------------------------------------------------------------------


def _docstring(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(doc.split()))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


__all__ = ["DOC_PATH", "REGENERATE", "render", "undescribed"]
