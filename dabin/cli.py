"""The ``dabin`` command: Lightning subcommands plus ``sweep``, ``report`` and ``data``.

``fit``, ``validate``, ``test`` and ``predict`` go to the Lightning CLI (:mod:`dabin.lightning_cli`);
the other subcommands have small parsers of their own, each in the module that owns the concept
(``data digits`` is :mod:`datamodules.digits`'s export; a dataset folder named ``digits`` is checked
as ``dabin data ./digits``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from dabin.errors import DabinError

#: subcommand -> "module:function" taking argv and returning an exit status.
_COMMANDS: dict[str, str] = {
    "fit": "dabin.lightning_cli:main",
    "validate": "dabin.lightning_cli:main",
    "test": "dabin.lightning_cli:main",
    "predict": "dabin.lightning_cli:main",
    "sweep": "dabin.sweep.cli:main",
    "report": "dabin.report.cli:main",
    "data": "datamodules.check:main",
}

#: (subcommand, word) -> "module:function" for a subcommand's own subcommands (``dabin data digits``).
_SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("data", "digits"): "datamodules.digits:main",
    ("data", "verify"): "datamodules.archives:main",
}

_USAGE = (
    "usage: dabin {fit,validate,test,predict,sweep,report,data} ...\n"
    "  fit|validate|test|predict  Lightning CLI (see `dabin fit --help`)\n"
    "  sweep SPEC                 run a resumable sweep of training runs\n"
    "  report DIR                 write the evaluation report of a sweep\n"
    "  data ROOT                  check a multi-domain image dataset\n"
    "  data digits --from ROOT    export torchvision's MNIST, USPS and SVHN as a dataset tree\n"
    "  data verify FILE ...       check downloads against their published checksums"
)


def _resolve(target: str) -> Callable[[list[str]], int]:
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dabin`` command line.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if args else 2
    command = args[0]
    if command not in _COMMANDS:
        print(f"dabin: error: unknown command {command!r}; expected one of {', '.join(_COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        # Lightning subcommands keep their name; the others take only their own arguments.
        passed = args if _COMMANDS[command] == "dabin.lightning_cli:main" else args[1:]
        target = _COMMANDS[command]
        if (command, passed[0] if passed else "") in _SUBCOMMANDS:
            target, passed = _SUBCOMMANDS[(command, passed[0])], passed[1:]
        return int(_resolve(target)(passed) or 0)
    except DabinError as error:
        print(f"dabin: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dabin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
