"""Settings: one loader and one text parser for every settings dataclass (local, Vertex, Trainer).

Settings live in frozen dataclasses whose fields carry their own docs (`setting(...)`); the
flags of `towergraph run` and the README's table come from them. A field whose type is itself
such a dataclass is a section (`model:`, `trainer:` ...).

- `load(cls, layers)` builds a settings dataclass from layers of values (a YAML file, then
  environment variables, then flags: later layers win). Types are strict: an int is an int
  (not `true`, not `2.5`), a float accepts an int, a tuple comes from a list, text is text.
  Every problem (wrong type, unknown setting, a list where a section belongs, a value the
  dataclass's own checks reject) is collected, each naming the setting (`model.epochs`) and
  where its value came from (`configs/local.yaml, line 12`, `flag --epochs`, `environment
  variable X`), into one ConfigError instead of stopping at the first.
- `parse_text(hint, text)` turns the text of a flag, an environment variable or a
  `--set name=value` into the typed value of a setting; `parse_assignments` parses a list of
  `name=value`.
- `read_yaml(path)` reads a config file (at most MAX_CONFIG_BYTES) and reports syntax errors
  with line and column, and duplicate keys, which YAML would otherwise silently drop.

Dataclasses report their own cross-field problems from `__post_init__` with `invalid(...)`.
No TensorFlow or TFX import: a config error shows up in a second.
"""

import dataclasses
import math
import os
import re
import typing
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

# A config file is a few dozen lines; anything this large is not one (and is not parsed).
MAX_CONFIG_BYTES = 1024 * 1024
# Integer settings must fit in 64 bits (TensorFlow's largest integer).
MAX_INT = 2 ** 63 - 1
_SHOWN_CHARS = 60


class Origin(str):
    """Where a value came from: a file path (with the line of the setting), a flag, ..."""

    line: int = 0

    @classmethod
    def in_file(cls, path: str, line: Optional[int]) -> "Origin":
        origin = cls(path)
        origin.line = line or 0
        return origin


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: which setting, what, and where its value came from."""

    setting: str  # dotted, e.g. model.epochs; "" for a problem of the file as a whole
    message: str
    where: str = ""  # e.g. Origin.in_file("configs/local.yaml", 12), "flag --epochs"

    def __str__(self) -> str:
        text = f"{self.setting}: {self.message}" if self.setting else self.message
        if not self.where:
            return text
        line = getattr(self.where, "line", 0)
        return f"{text} (from {self.where})" + (f" at line {line}" if line else "")


class ConfigError(ValueError):
    """Every problem of a config, one per line."""

    title = "invalid config"

    def __init__(self, problems: Sequence[Union[Problem, str]], title: Optional[str] = None):
        self.problems: List[Problem] = [problem if isinstance(problem, Problem)
                                        else Problem("", str(problem)) for problem in problems]
        if title:
            self.title = title
        super().__init__(self.title + ":\n"
                         + "\n".join(f"  - {problem}" for problem in self.problems))


def invalid(problems: Sequence[Tuple[str, str]]) -> None:
    """For `__post_init__`: raises ConfigError for (setting, message) pairs, if any."""
    if problems:
        raise ConfigError([Problem(name, message) for name, message in problems])


# --- declaring settings -------------------------------------------------------------------------

def setting(default, help_text: str, **kwargs):
    """A dataclass field that carries its own documentation (flags and README use it)."""
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple or default_factory for mutable defaults")
    return dataclasses.field(default=default, metadata={"help": help_text}, **kwargs)


def settings(cls) -> Iterator[Tuple[str, Any, str]]:
    """(name, default, help) of every field of a settings dataclass."""
    for field in dataclasses.fields(cls):
        yield field.name, _default(field), field.metadata.get("help", "")


def is_section(hint: Any) -> bool:
    return dataclasses.is_dataclass(hint) and isinstance(hint, type)


def hints(cls) -> Dict[str, Any]:
    """The type of every field of a settings dataclass."""
    return typing.get_type_hints(cls)


def kind(hint: Any) -> str:
    """What a setting of this type looks like, for messages and flags' metavars."""
    item = _item_type(hint)
    if item is not None:
        return {int: "a list of integers", float: "a list of numbers"}.get(item, "a list of text")
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "text"}.get(hint, "a section of settings" if is_section(hint) else str(hint))


def _default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _item_type(hint: Any) -> Optional[Any]:
    """int for Tuple[int, ...], str for Tuple[str, ...]; None for anything else."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        raise TypeError(f"settings tuples must be Tuple[X, ...], not {hint}")
    return None


# --- values: typed (YAML, Python) and text (flags, environment, --set) -------------------------

class _Mismatch(Exception):
    """A value that does not fit its setting's type (the message says how)."""


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _bounded(value: int) -> int:
    if abs(value) > MAX_INT:
        raise _Mismatch(f"expected an integer of at most {MAX_INT} in size, got {_shown(value)}")
    return value


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _Mismatch(f"expected a finite number, got {_shown(value)}")
    return number


def check_value(hint: Any, value: Any) -> Any:
    """`value` (from YAML or Python) as a value of type `hint`; raises _Mismatch."""
    item = _item_type(hint)
    if item is not None and isinstance(value, (list, tuple)):
        parts = []
        for index, part in enumerate(value):
            try:
                parts.append(check_value(item, part))
            except _Mismatch as error:
                raise _Mismatch(f"item {index + 1} of the list: {error}") from None
        return tuple(parts)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return _bounded(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(value)
    if hint is str and isinstance(value, str):
        return value
    raise _Mismatch(f"expected {kind(hint)}, got {_shown(value)}")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_text(hint: Any, text: str) -> Any:
    """The text of a flag, environment variable or `--set` as a value of type `hint`.

    bool: true/false (also yes/no, on/off, 1/0); int: digits only (not 2.5, not 1e3);
    float: a finite number; a tuple: comma-separated items ("256,128"; "" is empty).
    Raises ValueError naming what was expected.
    """
    try:
        return _parse(hint, text)
    except _Mismatch as error:
        raise ValueError(str(error)) from None


def _parse(hint: Any, text: str) -> Any:
    if hint is str:
        return text
    stripped = text.strip()
    item = _item_type(hint)
    if item is not None:
        parts = [part for part in stripped.strip("()[]").split(",") if part.strip()]
        parsed = []
        for index, part in enumerate(parts):
            try:
                parsed.append(_parse(item, part))
            except _Mismatch as error:
                raise _Mismatch(f"expected {kind(hint)} separated by commas, e.g. 256,128; "
                                f"item {index + 1}: {error}") from None
        return tuple(parsed)
    if hint is bool and stripped.lower() in _TRUE + _FALSE:
        return stripped.lower() in _TRUE
    if hint is int and re.fullmatch(r"[+-]?[0-9]{1,30}", stripped):
        return _bounded(int(stripped))
    if hint is float:
        try:
            return _finite(float(stripped))
        except ValueError:
            pass
    if is_section(hint):
        raise _Mismatch("is a section: set its settings one by one, e.g. model.epochs=5")
    raise _Mismatch(f"expected {kind(hint)}, got {_shown(text)}")


def hint_of(cls, dotted: str) -> Any:
    """The type of the setting `dotted` (model.epochs) of `cls`; KeyError if there is none."""
    hint: Any = cls
    for part in dotted.split("."):
        if not is_section(hint) or part not in hints(hint):
            raise KeyError(dotted)
        hint = hints(hint)[part]
    return hint


def parse_assignments(cls, pairs: Sequence[str], where: str = "--set") -> Dict[str, Any]:
    """['temperature=0.05', 'candidate_layers=256,128', 'model.epochs=5'] -> typed values of
    settings of `cls`, nested by section ({'model': {'epochs': 5}}); ConfigError lists every
    malformed pair, unknown setting and bad value."""
    values: Dict[str, Any] = {}
    problems = []
    for pair in pairs:
        name, equals, text = pair.partition("=")
        name = name.strip()
        origin = f"{where} {_shown(pair)[1:-1]}"
        if not equals or not name:
            problems.append(Problem("", f"expected NAME=VALUE, got {_shown(pair)}", where))
            continue
        try:
            value = parse_text(hint_of(cls, name), text)
        except KeyError:
            problems.append(Problem(name, "unknown setting; known: " + ", ".join(
                _names(cls)), origin))
            continue
        except ValueError as error:
            problems.append(Problem(name, str(error), origin))
            continue
        *sections, last = name.split(".")
        target = values
        for section in sections:
            target = target.setdefault(section, {})
        target[last] = value
    if problems:
        raise ConfigError(problems)
    return values


def _names(cls, prefix: str = "") -> List[str]:
    names = []
    for name, hint in hints(cls).items():
        names += _names(hint, f"{prefix}{name}.") if is_section(hint) else [prefix + name]
    return names


# --- the loader ---------------------------------------------------------------------------------

Where = Union[str, Callable[[str], str]]


@dataclasses.dataclass(frozen=True)
class Layer:
    """Values of some settings (sections as nested mappings) and where they came from.

    `where` is a file path (a mapping from read_yaml adds the line of each key) or a function
    from a dotted setting name to its origin ("flag --epochs"). `text`: the values are text to
    parse (flags, environment variables), not typed values (YAML, Python).
    """

    values: Any
    where: Where
    text: bool = False
    at: str = ""  # where the values themselves are (a section's Origin); default: `where`

    def origin(self, key: Any, dotted: str) -> Origin:
        if callable(self.where):
            return self.where(dotted)
        return Origin.in_file(self.where, getattr(self.values, "lines", {}).get(key))

    def itself(self, dotted: str) -> str:
        return self.at or (self.where(dotted) if callable(self.where) else self.where)


DEFAULT = "the default"


def read(cls, layers: Sequence[Layer], problems: List[Problem], prefix: str = "",
         skip: Sequence[str] = ()) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """The defaults of `cls`'s settings overlaid by each layer in turn, type-checked.

    Returns the values (a section as a dict of its values) and where each came from, by
    dotted name. Problems are appended; a setting with a problem keeps its default.
    """
    types = hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)
              if field.init and field.name not in skip}
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    section_layers: Dict[str, List[Layer]] = {name: [] for name in fields
                                              if is_section(types[name])}
    for name, field in fields.items():
        if name not in section_layers:
            values[name], sources[prefix + name] = _default(field), DEFAULT
    for layer in layers:
        if layer.values is None:
            continue
        if not isinstance(layer.values, Mapping):
            section = prefix.rstrip(".")
            problems.append(Problem(section, f"expected a mapping of settings (name: value "
                                    f"lines), got {_shown(layer.values)}",
                                    layer.itself(section)))
            continue
        for key, value in layer.values.items():
            dotted = f"{prefix}{key}"
            origin = layer.origin(key, dotted)
            if key not in fields:
                problems.append(Problem(dotted, "unknown setting; known: " + ", ".join(
                    prefix + known for known in fields), origin))
            elif key in section_layers:
                section_layers[key].append(dataclasses.replace(
                    layer, values={} if value is None else value, at=origin))
            else:
                try:
                    if layer.text and isinstance(value, str):
                        typed = _parse(types[key], value)
                    else:
                        typed = check_value(types[key], value)
                except _Mismatch as error:
                    problems.append(Problem(dotted, str(error), origin))
                    continue
                values[key], sources[dotted] = typed, origin
    for name, inner in section_layers.items():
        values[name], section_sources = read(types[name], inner, problems, f"{prefix}{name}.")
        sources.update(section_sources)
    return values, sources


def build(cls, values: Dict[str, Any], sources: Mapping[str, str], problems: List[Problem],
          prefix: str = "", **given: Any) -> Optional[Any]:
    """`cls` from values read() returned (and `given` ready-made fields); None if it rejects
    them, with its problems appended, each naming where the value came from. A setting that
    already has a problem is not reported again (its value is only the default)."""
    types = hints(cls)
    defaults = {field.name: field for field in dataclasses.fields(cls)}
    arguments: Dict[str, Any] = dict(given)
    complete = True
    for name, value in values.items():
        if name in given:
            continue
        if is_section(types[name]):
            value = build(types[name], value, sources, problems, f"{prefix}{name}.")
            if value is None:  # reported; its default lets this level's checks run too
                complete, value = False, _default(defaults[name])
        arguments[name] = value
    reported = {problem.setting for problem in problems}
    try:
        built = cls(**arguments)
        return built if complete else None
    except ConfigError as error:
        for problem in error.problems:
            dotted = prefix + problem.setting
            if dotted not in reported:
                problems.append(Problem(dotted, problem.message, sources.get(dotted, "")))
        return None


def load(cls, layers: Sequence[Layer], title: Optional[str] = None, **given: Any):
    """`cls` from `layers` (later ones win); ConfigError listing every problem."""
    problems: List[Problem] = []
    values, sources = read(cls, layers, problems, skip=tuple(given))
    result = build(cls, values, sources, problems, **given)
    if problems:
        raise ConfigError(problems, title)
    return result


# --- YAML files ---------------------------------------------------------------------------------

class LocatedMapping(dict):
    """A YAML mapping that remembers the line of each of its keys (for messages)."""

    lines: Dict[Any, int]


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader whose mappings remember lines and reject duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedMapping:
    first_line: Dict[Any, int] = {}
    for key_node, _ in node.value:  # before merging `<<:` keys, which may repeat legitimately
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, typing.Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found an unhashable key ({_shown(key)})", key_node.start_mark)
        if key in first_line:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_shown(key)} (first on line {first_line[key]})",
                key_node.start_mark)
        first_line[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    mapping = LocatedMapping()
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str, missing_hint: str = "") -> Any:
    """The YAML file at `path` (None if empty); ConfigError if it is missing, too large, not
    text, or not YAML (naming the line and column)."""
    def fail(message: str):
        return ConfigError([Problem("", message)])
    if not os.path.exists(path):
        raise fail(f"config file {path} does not exist{missing_hint}")
    if not os.path.isfile(path):
        raise fail(f"config file {path} is not a file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise fail(f"cannot read config file {path}: {error.strerror or error}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise fail(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: "
                   f"not a config file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise fail(f"{path} is not UTF-8 text (byte {error.start + 1})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (_Loader is a SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = error.problem or error.context or "malformed"
        raise fail(f"{path} is not valid YAML: {at}{what}") from None
    except yaml.YAMLError as error:  # e.g. a control character (ReaderError has a position)
        raise fail(f"{path} is not valid YAML: {error}") from None
