#!/usr/bin/env python
"""`ocrloc download-mnist` (ocrloc/cli/download_mnist.py); `python tools/download_mnist.py --help` lists its options."""

import sys

from ocrloc.cli.download_mnist import main

if __name__ == "__main__":
    sys.exit(main())
