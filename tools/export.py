#!/usr/bin/env python
"""`ocrloc export` (ocrloc/cli/export.py); `python tools/export.py --help` lists its options."""

import sys

from ocrloc.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
