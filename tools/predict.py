#!/usr/bin/env python
"""`ocrloc predict` (ocrloc/cli/predict.py); `python tools/predict.py --help` lists its options."""

import sys

from ocrloc.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
