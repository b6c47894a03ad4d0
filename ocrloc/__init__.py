"""ocrloc: find every character on an image, name its class, place the point its class asks for."""

import os

# albumentations phones home for a version check on import; ocrloc must work offline and quietly.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

# The inference API, loaded on first use: `import ocrloc` stays light (no torch) until then.
_LAZY = {"Predictor": "ocrloc.api", "Detections": "ocrloc.api"}

__all__ = ["Detections", "Predictor", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
