#!/usr/bin/env python
"""`ocrloc report` (ocrloc/cli/report.py); `python tools/report.py --help` lists its options."""

import sys

from ocrloc.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
