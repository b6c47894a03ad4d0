"""Rules: which named point each digit class wants (SPEC section 4).

A rule is a plain mapping ``class -> point name``; the classes it maps are the only
classes drawn on its canvases. New rules may be added here; the two SPEC names never
change meaning.
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

from ocrloc.data.points import POINT_NAMES

__all__ = ["RULES", "get_rule", "rule_classes"]

RULES: Dict[str, Mapping[int, str]] = {
    "seed37": {3: "topleft", 7: "center"},
    "all10": {
        0: "topmost",
        1: "bottommost",
        2: "leftmost",
        3: "topleft",
        4: "rightmost",
        5: "centroid",
        6: "bottommost",
        7: "center",
        8: "centroid",
        9: "topmost",
    },
}

# A typo in a future rule should fail on import, not as a KeyError deep in a DataLoader worker.
for _name, _table in RULES.items():
    for _cls, _point in _table.items():
        assert _point in POINT_NAMES, f"rule {_name!r}: class {_cls} wants unknown point {_point!r}"


def get_rule(name: str) -> Mapping[int, str]:
    """The ``class -> point name`` table of rule ``name``.

    Raises:
        ValueError: naming the unknown rule and the known ones.
    """
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}; known rules: {', '.join(sorted(RULES))}") from None


def rule_classes(name: str) -> Tuple[int, ...]:
    """The digit classes that appear on canvases of rule ``name``, sorted."""
    return tuple(sorted(get_rule(name)))
