"""Command-line parsing of config dataclasses: ``--config file.yaml`` sets defaults, flags override them."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import yaml
from transformers import HfArgumentParser

__all__ = ["parse_config", "save_config"]


def parse_config(dataclass_types: Sequence[type], argv: Sequence[str], prog: str, description: str) -> tuple:
    """Parses ``argv`` into instances of ``dataclass_types``.

    A ``--config`` YAML file supplies defaults (its keys are the flag names with underscores); flags given on the
    command line override it. Unknown YAML keys are an error that lists them.
    """
    parser = HfArgumentParser(
        dataclass_types, prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=str, default=None, help="YAML file of defaults; flags override it.")
    pre_parser = argparse.ArgumentParser(add_help=False)
    pre_parser.add_argument("--config", type=str, default=None)
    pre, _ = pre_parser.parse_known_args(argv)
    if pre.config:
        values = yaml.safe_load(Path(pre.config).read_text()) or {}
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"{pre.config}: unknown keys {unknown}; run `{prog} --help` for the valid ones.")
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        parser.set_defaults(**values)
    namespace = parser.parse_args(argv)
    outputs = []
    for dtype in dataclass_types:
        names = {field.name for field in dataclasses.fields(dtype) if field.init}
        outputs.append(dtype(**{name: value for name, value in vars(namespace).items() if name in names}))
    return tuple(outputs)


def save_config(config, path: str | Path) -> Path:
    """Writes a config dataclass as YAML that ``--config`` reads back. Secrets (``*token*`` fields) are left out."""
    values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    values = {key: value for key, value in values.items() if "token" not in key}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
