#!/usr/bin/env python
"""`ocrloc experiment` (ocrloc/cli/experiment.py); `python tools/experiment.py --help` lists its options."""

import sys

from ocrloc.cli.experiment import main

if __name__ == "__main__":
    sys.exit(main())
