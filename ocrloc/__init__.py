"""ocrloc: find every character on an image, name its class, place the point its class asks for."""

import os

# albumentations phones home for a version check on import; ocrloc must work offline and quietly.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
