"""The ``ocrloc`` command: one subcommand per task, each in its own module of this package.

Each module ``ocrloc.cli.<name>`` exposes ``add_arguments(parser)``, ``run(args) -> int`` and
``main(argv=None) -> int`` (what ``tools/<name>.py`` calls). Parsing imports nothing heavy:
torch, numpy, albumentations and the rest are imported inside ``run``, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Dict, Optional, Sequence

from ocrloc import __version__
from ocrloc.cli._common import new_parser, run_command, summary

__all__ = ["COMMANDS", "build_parser", "main"]

# subcommand -> module in this package (and tools/<module>.py)
COMMANDS: Dict[str, str] = {
    "train": "train",
    "predict": "predict",
    "evaluate": "evaluate",
    "export": "export",
    "make-dataset": "make_dataset",
    "compare": "compare",
    "experiment": "experiment",
    "report": "report",
    "download-mnist": "download_mnist",
}

DESCRIPTION = """\
Find every character on an image, name its class, place the point its class asks for.

examples (MNIST once, the quickstart, then its test split, scores and export):
  ocrloc download-mnist
  ocrloc train --config quickstart --out runs/quickstart
  ocrloc make-dataset --preset canvas128 --rule all10 --split test --count 1000 --seed 1000 --out data/test_all10
  ocrloc predict --checkpoint runs/quickstart/checkpoints/best.pt --images data/test_all10/images \\
      --out runs/quickstart/test_results.json --threshold 0
  ocrloc evaluate --gt data/test_all10/annotations.json --results runs/quickstart/test_results.json
  ocrloc export --checkpoint runs/quickstart/checkpoints/best.pt --out runs/quickstart/model.pt
  ocrloc report --gt data/test_all10/annotations.json --results runs/quickstart/test_results.json \\
      --run runs/quickstart --out runs/quickstart/report

`ocrloc COMMAND --help` describes one command. `python -m ocrloc ...` is the same as `ocrloc ...`,
and `python tools/<command>.py` (tools/make_dataset.py for make-dataset) takes the same arguments.
"""


def build_parser(prog: Optional[str] = "ocrloc") -> argparse.ArgumentParser:
    """The parser of ``ocrloc`` with every subcommand's options (imports only the light CLI modules)."""
    parser = new_parser(DESCRIPTION, prog=prog)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub = commands.add_parser(name, help=summary(module.__doc__), description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = "ocrloc") -> int:
    """Run ``ocrloc`` with ``argv`` (``None``: ``sys.argv[1:]``); return the exit status.

    Bad usage exits 2 from argparse; a subcommand returns 2 for bad input or an output it cannot
    write (one ``error: ...`` line on stderr).
    """
    args = build_parser(prog).parse_args(argv)
    module = importlib.import_module(f"{__name__}.{COMMANDS[args.command]}")
    return run_command(module.run, args)
