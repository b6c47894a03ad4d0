"""``python -m ocrloc``: the same as the installed ``ocrloc`` command."""

import sys

from ocrloc.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m ocrloc"))
