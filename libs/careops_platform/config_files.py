"""Configuration files: YAML validated by one pydantic model per file kind, errors located.

Every error names the file and the field path, e.g.
`oncall.yaml: teams.sre.members[0].contacts[1].kind: 'fax' is not one of webhook, slack, …`.
The models only check shape and convert; the domain's dataclasses stay the values services use.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator, ValidationError
from pydantic_core import ErrorDetails

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Enum)
Location = Sequence[str | int]

_MAPPING_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type"})
_LIST_ERRORS = frozenset({"list_type", "tuple_type"})


class ConfigModel(BaseModel):
    """Base of every configuration file model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _scalar_text(value: Any) -> str:
    """Returns a YAML scalar as text (`shift: 7`, `date: 2026-01-05` unquoted); not lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | date) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"must be text, got {type(value).__name__}")


def _none_as_empty_list(value: Any) -> Any:
    """YAML `key:` with no value is an empty list."""
    return [] if value is None else value


def _none_as_empty_dict(value: Any) -> Any:
    """YAML `key:` with no value is an empty mapping."""
    return {} if value is None else value


def _falsy_as_none(value: Any) -> Any:
    """An empty section (`rotation: {}` or `rotation:`) means the section is absent."""
    return value or None


Text = Annotated[str, PlainValidator(_scalar_text)]
EmptyList = BeforeValidator(_none_as_empty_list)
EmptyDict = BeforeValidator(_none_as_empty_dict)
Absent = BeforeValidator(_falsy_as_none)


def one_of(kind: type[E]) -> PlainValidator:
    """Returns a validator of a member of `kind` by its value, case-insensitively."""

    def check(value: Any) -> E:
        """Returns the member whose value is `value`."""
        try:
            return kind(str(value).lower())
        except ValueError:
            choices = ", ".join(str(member.value) for member in kind)
            raise ValueError(f"{value!r} is not one of {choices}") from None

    return PlainValidator(check)


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file and the field path."""


class FieldError(ValueError):
    """Raised inside a validator to place `message` at `path` below the value validated."""

    def __init__(self, path: str | Location, message: str) -> None:
        """Places `message` at `path` (a key, or a sequence of keys and indexes)."""
        super().__init__(message)
        self.path: tuple[str | int, ...] = (path,) if isinstance(path, str) else tuple(path)
        self.message = message


def location(parts: Location) -> str:
    """Returns a field path as written in messages: `teams.sre.members[0].id`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _message(error: ErrorDetails) -> tuple[tuple[str | int, ...], str]:
    """Returns the location and the reader's message of one pydantic error."""
    loc = tuple(error["loc"])
    kind, given = error["type"], error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return loc + cause.path, cause.message
    if isinstance(cause, ValueError):
        return loc, str(cause)
    if kind == "missing":
        return loc, "missing"
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind in _MAPPING_ERRORS:
        return loc, f"must be a mapping, got {type(given).__name__}"
    if kind in _LIST_ERRORS:
        return loc, f"expected a list, got {type(given).__name__}"
    return loc, f"{error['msg']}, got {given!r}"


def describe(exc: ValidationError, *, at: Location = (), root: str = "") -> str:
    """Returns every error of `exc` as `path: message`, joined by '; '.

    `at` is where the validated value sits in its file; `root` names the value itself.
    """
    lines = []
    for error in exc.errors():
        loc, message = _message(error)
        lines.append(f"{location((*at, *loc)) or root or 'value'}: {message}")
    return "; ".join(lines)


def validate(
    model: type[M],
    data: Any,
    *,
    source: str = "",
    at: Location = (),
    root: str = "",
    error: type[ValueError] = ConfigError,
) -> M:
    """Returns `data` validated as `model`; raises `error` with located messages otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        text = describe(exc, at=at, root=root)
        raise error(f"{source}: {text}" if source else text) from None


def parse_document(model: type[M], document: str, *, error: type[ValueError], shape: str) -> M:
    """Returns a policy document (YAML text from an API call) validated as `model`; raises
    `error`: not YAML, not a mapping (`shape` says what it must be), or located messages."""
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        raise error(f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(shape)
    return validate(model, data, error=error)


def read_text(path: str | None, *, package: str, default: str) -> str:
    """Returns the text of file `path`, or of `package`'s data file `default` when `path` is
    empty; an unreadable file raises ConfigError."""
    if path:
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    return importlib.resources.files(package).joinpath(default).read_text("utf-8")


def read_yaml(path: str | None, *, package: str, default: str) -> tuple[Any, str]:
    """Returns the YAML document of `path` (or of `package`'s data file `default`) and its name.

    An empty document is an empty mapping; unreadable or malformed files raise ConfigError.
    """
    text = read_text(path, package=package, default=default)
    name = path or default
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not YAML: {exc}") from exc
    return ({} if data is None else data), name


def load(model: type[M], path: str | None, *, package: str, default: str) -> M:
    """Returns the configuration file `path` (None: the package default) validated as `model`."""
    data, name = read_yaml(path, package=package, default=default)
    return validate(model, data, source=Path(name).name if not path else name)
