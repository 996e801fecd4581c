"""What ``selfsup methods`` prints, read without importing torch (which alone takes ~2.3 s
of CPU here): ``catalogue.json`` beside this file holds each registered method's paper,
recipe, needs, optimizer defaults and options with their defaults. It is generated from the
registry by ``python -m selfsup.catalogue``, and a test checks it equals the registry, so
a new method or option that is not written into it fails the suite.
"""

from __future__ import annotations

import json
from pathlib import Path

PATH = Path(__file__).with_name("catalogue.json")


def load() -> dict[str, dict]:
    return json.loads(PATH.read_text())


def from_registry() -> dict[str, dict]:
    """The catalogue of the methods registered now (imports them, and so torch)."""
    from dataclasses import asdict

    from selfsup.methods import METHODS
    from selfsup.methods.options import option_defaults

    return {name: {"paper": m.paper, "year": m.year, "recipe": m.recipe, "needs": m.needs,
                   "warmup_fraction": m.warmup_fraction, "lr_schedule": m.lr_schedule,
                   "optimizer": asdict(m.optimizer),
                   "small_image_settings": {k: asdict(v) if k == "optimizer" else v
                                            for k, v in m.small_image_settings.items()},
                   "options": {option: repr(default) for option, default in option_defaults(m).items()}}
            for name, m in METHODS.items()}


def listing() -> str:
    lines = [f"{'name':<13} {'year':<5} {'recipe':<13} {'needs':<33} {'defaults':<36} paper"]
    for name, m in load().items():
        o = m["optimizer"]
        defaults = f"{o['name']}, lr {o['lr']:g} x B/256, wd {o['weight_decay']:g}"
        lines.append(f"{name:<13} {m['year']:<5} {m['recipe']:<13} {m['needs']:<33} {defaults:<36} {m['paper']}")
    return "\n".join(lines)


def optimizer_words(o: dict) -> str:
    return f"{o['name']}, lr {o['lr']:g} x batch/256, weight decay {o['weight_decay']:g}"


def small_images(settings: dict) -> str:
    """What a method's ``small_image_settings`` change, in words."""
    parts = []
    if o := settings.get("optimizer"):
        parts.append(optimizer_words(o))
    if "crop_min_scale" in settings:
        parts.append(f"crops down to {settings['crop_min_scale']:g} of the area")
    parts += [f"{option}={value!r}" for option, value in settings.get("options", {}).items()]
    return "; ".join(parts)


def card(name: str) -> str:
    from selfsup.errors import ConfigError

    methods = load()
    if name not in methods:
        raise ConfigError(f"method={name!r}: expected one of {', '.join(methods)}")
    m, o = methods[name], methods[name]["optimizer"]
    lines = [f"{name} ({m['year']}): {m['paper']}", f"  recipe {m['recipe']}; needs {m['needs']}",
             f"  optimizer {optimizer_words(o)}, warm-up {m['warmup_fraction']:.0%} of the epochs, then "
             f"{'a constant lr' if m.get('lr_schedule') == 'constant' else 'cosine decay'}",
             *([f"  on images of 32 px or less: {small_images(s)}"] if (s := m.get("small_image_settings")) else []),
             "  options (--method-option NAME=VALUE; defaults are the paper's settings):"]
    lines += [f"    {option:<28} {default}" for option, default in m["options"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    from selfsup.atomic import write_text

    write_text(PATH, json.dumps(from_registry(), indent=1) + "\n")
    print(f"wrote {PATH}")
