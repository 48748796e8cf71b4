"""Config files: reading a YAML file of option values safely, and writing a config back as one.

Every layer may use it (training and the demo write their resolved config; the command line reads ``--config``);
it imports nothing but PyYAML, and that only when called.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["ConfigFileError", "MAX_VALUES", "read_config_file", "save_config"]

# Values a config file may hold once its aliases are expanded: a recipe holds a few dozen. YAML anchors and aliases
# nested in each other expand exponentially (a 443-byte file can stand for billions of values).
MAX_VALUES = 10_000


class ConfigFileError(ValueError):
    """A config file that cannot be read or is not a mapping of option names to values."""


def read_config_file(path: str | Path) -> dict:
    """The option values of the YAML file ``path``: a mapping, read with ``yaml.safe_load`` (no tags that run
    code), of at most :data:`MAX_VALUES` values counted with every alias expanded. Raises :class:`ConfigFileError`
    in one line, before any value is turned into text."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise ConfigFileError(f"cannot read --config {path}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise ConfigFileError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(values, dict):
        raise ConfigFileError(f"{path} must be a mapping of option names to values, got {type(values).__name__}.")
    if _exceeds(values, MAX_VALUES):
        raise ConfigFileError(
            f"{path} expands to more than {MAX_VALUES} values (YAML aliases repeated inside each other): write the "
            "values out instead of using anchors and aliases."
        )
    return values


def _exceeds(value, limit: int) -> bool:
    """Whether ``value`` holds more than ``limit`` values, each alias counted as often as it is used; stops
    counting at ``limit``, so a recursive or exponential structure costs no more than ``limit`` steps."""
    pending, count = [value], 0
    while pending:
        item = pending.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            pending.extend(item)
    return False


def save_config(config, path: str | Path) -> Path:
    """Writes a config dataclass as YAML that ``--config`` reads back. Secrets (``*token*`` fields) are left out."""
    import yaml

    values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    values = {key: value for key, value in values.items() if "token" not in key}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
