"""slabot's application errors, and the translation of validation errors into plain lines.

    SlabotError
    ├── StartupError    slabot run cannot start (the port is taken, the database cannot be opened)
    └── ConfigError     a config, preset or accounts file that cannot be used
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class SlabotError(Exception):
    """Base class of slabot's own errors; the CLI prints them without a traceback."""


class StartupError(SlabotError):
    """``slabot run`` cannot start: one line naming the cause and what to do."""


class ConfigError(SlabotError):
    """A file that cannot be used: one line per problem, each naming the file and the key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys a model accepts at ``loc`` (the parent of an unknown key)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            # an alias, or a dict key such as a calendar name: look for a model in the annotation
            field = next((f for f in getattr(current, "model_fields", {}).values() if f.alias == part), None)
        if field is None:
            current = _inner_model(current)
            continue
        current = _inner_model(field.annotation)
    if current is None or not hasattr(current, "model_fields"):
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def shown(value: Any) -> str:
    """A value as an error message shows what was found: short, tables and lists named."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _secret(loc: Sequence[str | int]) -> bool:
    """Whether the key at ``loc`` holds a secret, whose value an error message must not repeat."""
    last = next((p for p in reversed(loc) if isinstance(p, str)), "")
    return any(word in last for word in ("secret", "token", "password"))


def describe_validation_error(source: str | Path, model: type[BaseModel], error: ValidationError) -> ConfigError:
    """One readable line per pydantic error: file, dotted key, what was expected, what was found."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # pydantic names union branches ("TargetModel", "str") in loc; drop them
        loc = [p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in {"str", "date", "list[str]"}))]
        where = f"{source}: {_dotted(loc)}"
        kind = item["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
            problems.append(f"{where}: unknown key{hint}")
        elif kind == "missing":
            problems.append(f"{where}: missing required key")
        else:
            message = str(item["msg"])
            for prefix in ("Value error, ", "Assertion failed, "):
                message = message.removeprefix(prefix)
            message = message.replace("Input should be", "expected")
            if not message.startswith("expected"):
                message = f"expected a valid value ({message})"
            given = item.get("input")
            found = ("nothing" if given is None or given == "" else "a hidden value") if _secret(loc) else shown(given)
            problems.append(f"{where}: {message}, found {found}")
    return ConfigError(problems)
