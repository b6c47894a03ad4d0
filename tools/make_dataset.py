#!/usr/bin/env python
"""`ocrloc make-dataset` (ocrloc/cli/make_dataset.py); `python tools/make_dataset.py --help` lists its options."""

import sys

from ocrloc.cli.make_dataset import main

if __name__ == "__main__":
    sys.exit(main())
