#!/usr/bin/env python
"""`ocrloc train` (ocrloc/cli/train.py); `python tools/train.py --help` lists its options."""

import sys

from ocrloc.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
