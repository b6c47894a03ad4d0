#!/usr/bin/env python
"""`ocrloc evaluate` (ocrloc/cli/evaluate.py); `python tools/evaluate.py --help` lists its options."""

import sys

from ocrloc.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
