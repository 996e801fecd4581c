"""A method's options are its constructor's keyword arguments (their defaults are the
paper's settings): ``method_options`` in YAML, ``--method-option NAME=VALUE`` on the command
line. They are checked against the signature here, so a typo or a wrong type is one line
naming the option and the accepted ones, before any work."""

from __future__ import annotations

import inspect
import re

import yaml

from selfsup.errors import ConfigError

INTERNAL = {"self", "backbone", "gather_distributed", "seed"}  # set by the trainer, not the user


def option_defaults(cls) -> dict:
    """The user-settable options of method class ``cls`` and their defaults, in order."""
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in INTERNAL and p.default is not inspect.Parameter.empty}


def read_yaml(text: str):
    """``text`` as YAML's safe loader reads it, except that ``5e-4`` and ``1E3`` are numbers:
    YAML 1.1 (PyYAML's) reads an exponent without a dot as a string, YAML 1.2 as a float."""
    return yaml.load(text, Loader=_Loader)


def parse_value(text: str):
    """A command-line value as YAML reads it: 0.5, 5e-4, 4096, true, none, [0.15, 0.2]."""
    try:
        return read_yaml(text)
    except yaml.YAMLError:
        return text


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def check_options(cls, options: dict, where: str = "method_options") -> dict:
    """``options`` with each value of its default's type (ints as floats, lists as tuples);
    ConfigError for an unknown name or a value of the wrong type."""
    defaults = option_defaults(cls)
    checked = {}
    for name, value in options.items():
        if name not in defaults:
            raise ConfigError(f"{where}: {name!r} is not an option of method {cls.name}; "
                              f"options: {', '.join(defaults) or 'none'}")
        checked[name] = _in_range(name, _typed(value, defaults[name], f"{where}.{name}"), f"{where}.{name}")
    return checked


def _in_range(name: str, value, where: str):
    """``value`` if a number of option ``name`` can take it: finite; a temperature above 0;
    a momentum from 0 to 1 (as the ``temperature`` and ``momentum`` fields of a config)."""
    numbers = value if isinstance(value, tuple) else (value,)
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            continue
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}={value!r}: expected a finite number")
        if "temperature" in name and number <= 0:
            raise ConfigError(f"{where}={value!r}: expected > 0")
        if "momentum" in name and not 0 <= number <= 1:
            raise ConfigError(f"{where}={value!r}: expected from 0 to 1")
    return value


def _typed(value, default, where: str):
    def wrong(expected: str):
        return ConfigError(f"{where}={value!r}: expected {expected}")
    if default is None:  # "derived from the backbone" unless given: a number or none
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        raise wrong("a number or none")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default) or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise wrong(f"a list of {len(default)} numbers")
        return tuple(float(v) for v in value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    return value
