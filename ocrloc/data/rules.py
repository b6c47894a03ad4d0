"""Rules: which named point each digit class wants (``docs/task.md``, "Rules").

A rule is a plain mapping ``class -> point name``; the classes it maps are the only
classes drawn on its canvases. The two built-in names (``all10``, ``seed37``) never change
meaning. Any other rule is data: a YAML or JSON file mapping classes to point names
(``{0: topright, 3: leftmost, ...}``), given wherever a rule name is taken
(``tools/make_dataset.py --rule FILE``, ``data.rule: FILE``). Its points are the seven named
points (:data:`~ocrloc.data.points.POINT_NAMES`), further points of the ink box
(:data:`~ocrloc.data.points.BOX_POINT_NAMES`), or stroke points found by a search over the ink,
spelt ``nearest_ink(a, b)`` or ``first_ink(a, b, dx, dy)`` (:func:`~ocrloc.data.points.stroke_point`).
A rule is how data is *made*: no model reads it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Mapping, Tuple

import yaml

from ocrloc.data.catalog import RULES
from ocrloc.data.points import BOX_POINT_NAMES, POINT_NAMES, parse_stroke_point
from ocrloc.utils.errors import yaml_problem

__all__ = ["RULES", "RULE_POINT_NAMES", "RULE_FILE_SUFFIXES", "KNOWN_POINTS", "get_rule", "rule_classes",
           "load_rule_file"]

RULE_POINT_NAMES: Tuple[str, ...] = POINT_NAMES + BOX_POINT_NAMES
RULE_FILE_SUFFIXES = (".yaml", ".yml", ".json")
# What a rule file's error message lists as the points it may ask for.
KNOWN_POINTS = f"{', '.join(RULE_POINT_NAMES)}, or a stroke point nearest_ink(a, b) or first_ink(a, b, dx, dy)"

# A typo in a future rule should fail on import, not as a KeyError deep in a DataLoader worker.
for _name, _table in RULES.items():
    for _cls, _point in _table.items():
        assert _point in POINT_NAMES, f"rule {_name!r}: class {_cls} wants unknown point {_point!r}"


@functools.lru_cache(maxsize=32)
def _load_rule_file(path: str, mtime_ns: int) -> Mapping[int, str]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ValueError(f"rule file {path}: cannot read it ({type(err).__name__}: {err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"rule file {path}: cannot read it ({yaml_problem(err)})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"rule file {path}: expected a mapping of classes to point names, got {data!r}")
    table: Dict[int, str] = {}
    for key, point in data.items():
        try:
            cls = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"rule file {path}: class {key!r} is not an integer") from None
        if not 0 <= cls <= 9:
            raise ValueError(f"rule file {path}: class {cls} outside 0..9")
        if point not in RULE_POINT_NAMES:
            try:
                stroke = parse_stroke_point(point)
            except ValueError as err:
                raise ValueError(f"rule file {path}: class {cls}: {err}") from None
            if stroke is None:
                raise ValueError(f"rule file {path}: class {cls} wants unknown point {point!r}; "
                                 f"known points: {KNOWN_POINTS}")
            point = f"{stroke[0]}({', '.join(f'{v:g}' for v in stroke[1])})"  # one spelling per point
        table[cls] = point
    return table


def load_rule_file(path: str | Path) -> Mapping[int, str]:
    """The ``class -> point name`` table of a YAML / JSON rule file (read once per version of the file).

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file and the class, for anything but a mapping of classes 0-9 to
            :data:`RULE_POINT_NAMES`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rule file not found: {path}")
    return _load_rule_file(str(path.resolve()), path.stat().st_mtime_ns)


def get_rule(name: str) -> Mapping[int, str]:
    """The ``class -> point name`` table of rule ``name``: a built-in rule, or a rule file's path.

    Raises:
        ValueError: naming the unknown rule and the known ones, or what is wrong in a rule file.
        FileNotFoundError: for a rule file that does not exist.
    """
    if name in RULES:
        return RULES[name]
    if Path(name).suffix.lower() in RULE_FILE_SUFFIXES:
        return load_rule_file(name)
    raise ValueError(f"unknown rule {name!r}; known rules: {', '.join(sorted(RULES))}, "
                     f"or a rule file ({', '.join(RULE_FILE_SUFFIXES)})")


def rule_classes(name: str) -> Tuple[int, ...]:
    """The digit classes that appear on canvases of rule ``name``, sorted."""
    return tuple(sorted(get_rule(name)))
