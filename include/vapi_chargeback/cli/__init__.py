"""``vapi-chargeback``: the operators' command line, usable without Airflow running.

One verb per job, one module per verb: ``run`` (a month with the DAG's own steps),
``validate`` (every input problem as ``file:line: message``), ``plan`` (what a run would
send), ``status`` (every published month, verified), ``diff`` (two months or versions),
``fx-rates``, ``mapping suggest`` and ``airflow`` (Airflow with the project's environment).

Errors follow the linters' convention: an error we raise on purpose (a
:class:`~vapi_chargeback.errors.ChargebackError`: bad config naming its file and line, a
refused request, a month that cannot run yet, a statement that does not reconcile) prints
its message on stderr and exits 1, without a traceback; a wrong command line exits 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from vapi_chargeback import __version__
from vapi_chargeback.cli import airflow_env, diff, fx_rates, mapping, plan, run, status, validate
from vapi_chargeback.cli.common import (
    API_KEY_ENV,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
)
from vapi_chargeback.errors import ChargebackError

__all__ = ["API_KEY_ENV", "EXIT_ERROR", "EXIT_USAGE", "PROG", "main"]

COMMANDS = (run, validate, plan, status, diff, fx_rates, mapping, airflow_env)
"""In the order ``--help`` lists them."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command: Callable[[argparse.Namespace, argparse.ArgumentParser], int] = args.handler
    try:
        return command(args, parser)
    except ChargebackError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was published", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Monthly chargeback statements per cost center from the Vapi Analytics API.",
        epilog=f"`{PROG} COMMAND --help` explains a command's options. Exit status: 0 done,"
        " 1 the command found a problem (its message says which and where), 2 a wrong"
        " command line.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log each step and request on stderr (default: warnings only)",
    )
    for module in COMMANDS:
        module.add_parser(commands, common)
    return parser
