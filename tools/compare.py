#!/usr/bin/env python
"""`ocrloc compare` (ocrloc/cli/compare.py); `python tools/compare.py --help` lists its options."""

import sys

from ocrloc.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
