"""The ``coffea-jetimg`` console script.

Each subcommand lives in its own module, which provides ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> int``. The modules are imported only when their
subcommand runs (or for ``--help``), so ``coffea-jetimg generate`` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "COMMANDS"]

#: subcommand -> module implementing it
COMMANDS = {
    "generate": "coffea_jetimg.generate._cli",
    "train": "coffea_jetimg._train_cli",
    "run": "coffea_jetimg._run_cli",
    "report": "coffea_jetimg._report_cli",
    "demo": "coffea_jetimg._demo",
    "serve": "coffea_jetimg._serve_cli",
    "export-triton": "coffea_jetimg.serving._export_cli",
    "wrap": "coffea_jetimg._wrap_cli",
    "fit": "coffea_jetimg._fit_cli",
}


def _available():
    import importlib.util

    return {name: mod for name, mod in COMMANDS.items() if importlib.util.find_spec(mod) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coffea-jetimg",
        description="Jet images and deep-learning taggers for coffea: generate samples, train, run, report.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in _available().items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=(mod.__doc__ or mod.HELP).strip(),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(args._module.main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
