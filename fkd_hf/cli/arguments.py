"""Command-line parsing of config dataclasses: ``--config file.yaml`` sets defaults, flags override them.

Plain dataclasses (``GenerateConfig``, ``DemoConfig``) get a parser built here from their fields, which imports
nothing heavy, so their ``--help`` prints before torch loads; ``TrainingArguments`` subclasses (``FKDConfig``) go
through transformers' ``HfArgumentParser``, with their own fields listed first. The YAML values are handed to the
same parser as the flags, so every value is converted to its field's type (or refused) before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
import types
import typing
from collections.abc import Collection, Mapping, Sequence

from ..config_io import ConfigFileError, read_config_file
from ..errors import UsageError

__all__ = ["UsageError", "CommandParser", "HelpFormatter", "make_parser", "parse_config", "require"]


def _bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _field_kind(annotation) -> tuple[type, bool]:
    """``(element type, is a list)`` of a field annotation such as ``int``, ``float | None``, ``list[float] | None``."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _field_kind(args[0])
    if origin is list:
        return (args[0] if args else str), True
    return annotation, False


def _flag_names(name: str) -> list[str]:
    return [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])


def _add_field(parser: argparse.ArgumentParser, field: dataclasses.Field, annotation) -> None:
    kind, is_list = _field_kind(annotation)
    names = _flag_names(field.name)
    options: dict = {"dest": field.name, "help": field.metadata.get("help")}
    if field.default is not dataclasses.MISSING:
        options["default"] = field.default
    elif field.default_factory is not dataclasses.MISSING:
        options["default"] = field.default_factory()
    else:
        options["required"] = True
    if kind is bool:
        options.update(type=_bool, nargs="?", const=True, metavar="true|false")
    else:
        options["type"] = kind if kind in (int, float) else str
        if is_list:
            options["nargs"] = "+"
    parser.add_argument(*names, **options)


def _add_positional(parser: argparse.ArgumentParser, field: dataclasses.Field, annotation, required: bool) -> None:
    """``field`` as the command's positional argument (``NAME``, or ``NAME ...`` for a list), also accepted as the
    flag ``--name`` (dest ``--name``, not shown); optional where the config file or that flag gives it."""
    _, is_list = _field_kind(annotation)
    nargs = ("+" if is_list else None) if required else ("*" if is_list else "?")
    parser.add_argument(field.name, nargs=nargs, metavar=field.name.upper(), help=field.metadata.get("help"))
    parser.add_argument(
        *_flag_names(field.name),
        dest=f"--{field.name}",
        nargs="+" if is_list else None,
        default=None,
        help=argparse.SUPPRESS,
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout, and ends the help of each option that has a default with ``(default: X)``
    (unless its help already names its default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (
            not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or default == ""
            or isinstance(action, argparse._StoreConstAction)
            or "default" in text.lower()
        ):
            return text
        if isinstance(default, enum.Enum):
            default = default.value
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, (list, tuple)):
            shown = " ".join(map(str, default))  # as it is typed
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


class CommandParser(argparse.ArgumentParser):
    """The parser of an fkd-hf command: its errors are one line plus where to look, as :class:`UsageError`, and its
    help shows the defaults (:class:`HelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message} (run `{self.prog} --help` for the options)")


def make_parser(
    dataclass_types: Sequence[type],
    prog: str,
    description: str,
    positional: str | None = None,
    supplied: Collection[str] = (),
) -> argparse.ArgumentParser:
    """The parser of ``dataclass_types``: one flag per field (``--name`` and ``--name-with-dashes``). The field
    named ``positional`` (none for ``TrainingArguments`` subclasses) is a positional argument instead, required
    unless it is in ``supplied`` (given by the config file or as a flag)."""
    from_transformers = any(_is_training_arguments(dtype) for dtype in dataclass_types)
    if from_transformers:
        parser = _trainer_parser(dataclass_types, prog, description)
    else:
        parser = CommandParser(prog=prog, description=description)
        for dtype in dataclass_types:
            hints = typing.get_type_hints(dtype)
            for field in dataclasses.fields(dtype):
                if field.init and field.name == positional:
                    _add_positional(parser, field, hints[field.name], required=positional not in supplied)
                elif field.init:
                    _add_field(parser, field, hints[field.name])
    parser.add_argument("--config", type=str, default=None, help="YAML file of defaults; flags override it.")
    return parser


def _is_training_arguments(dtype: type) -> bool:
    return any(base.__name__ == "TrainingArguments" for base in dtype.__mro__)


def _trainer_parser(dataclass_types: Sequence[type], prog: str, description: str) -> argparse.ArgumentParser:
    """transformers' HfArgumentParser, with each config's own fields (those its Trainer parent lacks) in a group
    of their own, listed first in ``--help``."""
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser(dataclass_types, prog=prog, description=description, formatter_class=HelpFormatter)
    parser.error = types.MethodType(CommandParser.error, parser)
    inherited = {field.name for field in dataclasses.fields(TrainingArguments)}
    own = {field.name for dtype in dataclass_types for field in dataclasses.fields(dtype)} - inherited
    group = parser.add_argument_group(f"{dataclass_types[0].__name__} options")
    for old_group in parser._action_groups:
        moved = [action for action in old_group._group_actions if action.dest in own]
        if old_group is not group and moved:
            old_group._group_actions[:] = [action for action in old_group._group_actions if action.dest not in own]
            group._group_actions.extend(moved)
    parser._action_groups.remove(group)
    parser._action_groups.insert(1, group)  # before the optional-argument group, which holds the Trainer's fields
    parser._optionals.title = f"{TrainingArguments.__name__} options"
    return parser


def _rename(names: Mapping[str, str], renamed: Mapping[str, str], prog: str, where: str) -> dict:
    """``names`` with deprecated keys replaced by their new names, printing a deprecation note for each."""
    out = {}
    for key, value in names.items():
        new = renamed.get(key)
        if new is not None:
            print(f"{prog}: {where}{key} is deprecated and will be removed; use {where}{new}.", file=sys.stderr)
            key = new
        out[key] = value
    return out


def _renamed_argv(argv: Sequence[str], renamed: Mapping[str, str], prog: str) -> list[str]:
    out = []
    for word in argv:
        flag, sep, value = word.partition("=")
        name = flag[2:].replace("-", "_") if flag.startswith("--") else None
        if name in renamed:
            _rename({name: None}, renamed, prog, "--")
            word = f"--{renamed[name]}{sep}{value}"
        out.append(word)
    return out


def _union_members(annotation) -> list:
    """The types a field annotation allows: ``int | None`` -> ``[int, NoneType]``, ``list[float]`` -> ``[list]``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(annotation) for member in _union_members(arg)]
    return [typing.get_origin(annotation) or annotation]


def _check_unconverted(path: str, key: str, value, annotation) -> None:
    """Refuses a YAML value the parser cannot convert (null, a mapping, a list) unless the field takes that kind."""
    members = _union_members(annotation)
    kinds = ((type(None), value is None), (dict, isinstance(value, dict)), (list, isinstance(value, list)))
    for kind, given in kinds:
        if given and kind not in members and typing.Any not in members:
            names = " or ".join(
                "null" if member is type(None) else getattr(member, "__name__", str(member)) for member in members
            )
            raise UsageError(f"{path}: {key} takes {names}, got {value!r}; fix the value or remove the key.")


def _read_config(path: str, renamed: Mapping[str, str], prog: str) -> dict:
    try:
        values = read_config_file(path)
    except ConfigFileError as err:
        raise UsageError(str(err)) from err
    return _rename(values, renamed, prog, f"{path}: ")


def _config_argv(
    path: str,
    values: Mapping[str, object],
    parser: argparse.ArgumentParser,
    hints: Mapping[str, object],
    prog: str,
    positional: str | None,
) -> list[str]:
    """The values of a YAML config file as command-line words, so that the parser converts them like flags."""
    actions = {action.dest: action for action in parser._actions}
    unknown = sorted(set(values) - set(actions) - {"config"})
    if unknown:
        raise UsageError(f"{path}: unknown keys {unknown}; run `{prog} --help` for the valid ones.")
    words: list[str] = []
    for key, value in values.items():
        if key in hints and (value is None or isinstance(value, (dict, list))):
            _check_unconverted(path, key, value, hints[key])
        if key == positional:  # a default of the positional argument, which the command line may give instead
            parser.set_defaults(**{key: list(map(str, value)) if isinstance(value, list) else str(value)})
        elif value is None or isinstance(value, dict) or value == []:  # taken as they are: nothing to convert
            parser.set_defaults(**{key: value})
            actions[key].required = False
        elif isinstance(value, list):
            words += [f"--{key}", *map(str, value)]
        else:
            words.append(f"--{key}={value}")
    return words


def parse_config(
    dataclass_types: Sequence[type],
    argv: Sequence[str],
    prog: str,
    description: str,
    renamed: Mapping[str, str] | None = None,
    positional: str | None = None,
) -> tuple:
    """Parses ``argv`` into instances of ``dataclass_types``.

    A ``--config`` YAML file supplies defaults (its keys are the flag names with underscores); flags on the command
    line override it. ``renamed`` maps deprecated option names to their new ones (accepted with a note); the field
    ``positional`` is given without its flag (``fkd-hf import-fkd LABEL_DIR ...``). Unknown keys, unconvertible
    values and invalid fields raise :class:`UsageError`.
    """
    renamed = dict(renamed or {})
    argv = _renamed_argv(argv, renamed, prog)
    pre_parser = argparse.ArgumentParser(add_help=False)
    pre_parser.add_argument("--config", type=str, default=None)
    pre, _ = pre_parser.parse_known_args(argv)
    values = _read_config(pre.config, renamed, prog) if pre.config else {}
    as_flag = positional is not None and any(word.partition("=")[0] in _flag_names(positional) for word in argv)
    supplied = set(values) | ({positional} if as_flag else set())
    parser = make_parser(dataclass_types, prog, description, positional, supplied)
    hints = {name: hint for dtype in dataclass_types for name, hint in typing.get_type_hints(dtype).items()}
    config_words = _config_argv(pre.config, values, parser, hints, prog, positional) if pre.config else []
    namespace = parser.parse_args(config_words + list(argv))
    if as_flag:
        setattr(namespace, positional, getattr(namespace, f"--{positional}"))
    outputs = []
    for dtype in dataclass_types:
        names = {field.name for field in dataclasses.fields(dtype) if field.init}
        try:
            outputs.append(dtype(**{name: value for name, value in vars(namespace).items() if name in names}))
        except (ValueError, TypeError) as err:
            raise UsageError(" ".join(str(err).split())) from err
    return tuple(outputs)


def require(config, names: Sequence[str], prog: str) -> None:
    """Raises :class:`UsageError`, as the parser does for a missing required flag, if a field in ``names`` that the
    config class leaves optional (for use from Python) is not set on the command line or in the config file."""
    missing = [f"--{name}" for name in names if getattr(config, name) in (None, "")]
    if missing:
        raise UsageError(
            f"the following arguments are required: {', '.join(missing)} (run `{prog} --help` for the options)"
        )
