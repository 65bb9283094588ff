"""``vapi-chargeback validate``: every problem of the config and the files it names, for CI.

A check for pull requests when finance edits the mapping: one ``file:line: message`` per
problem on stdout (the linters' format, which editors and CI annotations read), exit 1 on
any. It calls the loaders a run calls (``load_config``, ``load_mapping``,
``load_invoices``, ``load_fx_rates`` and, with ``--month``, the plan and the month's rate),
so its messages and line numbers are the run's own. A run stops at the first file with a
problem; this goes on to the next file, so one pass names everything. A config that does not
load still names the other files: they are checked by the file names and cost center ids
written in it (:func:`as_written`); the month checks need a config that loads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from vapi_chargeback.cli.common import EXIT_ERROR, EXIT_OK, PROG, config_arg, month_arg
from vapi_chargeback.errors import ChargebackError
from vapi_chargeback.inputfiles import InputFileError

if TYPE_CHECKING:
    from vapi_chargeback.config import ChargebackConfig

T = TypeVar("T")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    validate = commands.add_parser(
        "validate",
        parents=[common],
        help="check the config, the mapping and every input file it names; file:line: message",
        description=(
            "Check chargeback.yaml, its mapping CSV, invoices.csv and (with a"
            " reporting_currency) the FX rates file with the checks a run makes, without"
            " calling the API or writing anything. Every problem found is printed on stdout as"
            " `file:line: message` (the format editors and CI annotations understand); a run"
            " would stop at the first file with one. With --month, also what a run of that"
            " month checks: the cost centers still charged then and the month's FX rate."
        ),
        epilog=(
            "Exit status: 0 no problem (one summary line on stdout), 1 problems (one line"
            " each; a count on stderr), 2 a wrong command line. Example, as a pull-request"
            " check: vapi-chargeback validate include/config/chargeback.yaml"
        ),
    )
    validate.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=None,
        metavar="CONFIG",
        help="chargeback.yaml to check; the files it names are read relative to it"
        " (default: --config, else include/config/chargeback.yaml)",
    )
    config_arg(validate, "the same as CONFIG, as the other commands take it", "config_option")
    validate.add_argument(
        "--month",
        type=month_arg,
        metavar="YYYY-MM",
        help="also check what a run of this month checks: retired cost centers and shared"
        " percentages for that month, its plan, and its FX rate (default: month-free checks)",
    )
    validate.set_defaults(handler=_validate)


@dataclass
class Report:
    """The problems found, and what was read without one (for the summary)."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    lenient: bool = False
    """The config did not load: the other files were checked by its names as written."""

    def attempt(self, load: Callable[[], T], where: Path) -> T | None:
        """``load()``, or ``None`` with its problems recorded. An input file's error carries
        one line per problem; any other error of ours is one problem of ``where``."""
        try:
            return load()
        except InputFileError as error:
            self.problems += [_located(problem, where) for problem in error.problems]
        except ChargebackError as error:
            self.problems.append(_located(str(error), where))
        return None


def check(config_file: Path, month: str | None = None) -> Report:
    """Every problem the run's loaders find in ``config_file`` and the files it names."""
    from vapi_chargeback.close.invoices import load_invoices
    from vapi_chargeback.config import load_config
    from vapi_chargeback.fxrates import fx_rates_path, load_fx_rates
    from vapi_chargeback.mapping import load_mapping
    from vapi_chargeback.pipeline import invoices_path, mapping_path

    report = Report()
    loaded = report.attempt(lambda: load_config(config_file), config_file)
    config = loaded or as_written(config_file)
    if config is None:
        return report
    if loaded is not None:
        report.checked.append(f"{config_file} ({len(config.cost_centers)} cost centers)")
    mapping_file = mapping_path(config, config_file)
    mapping = report.attempt(lambda: load_mapping(mapping_file, config), mapping_file)
    if mapping is not None:
        report.checked.append(f"{mapping_file} ({len(mapping.entries)} rows)")
    invoices_file = invoices_path(config, config_file)
    invoices = report.attempt(lambda: load_invoices(invoices_file), invoices_file)
    if invoices is not None:
        held = f"{len(invoices)} invoices" if invoices.sha256 else "absent, optional"
        report.checked.append(f"{invoices_file} ({held})")
    if config.reporting_currency is not None:
        rates_file = fx_rates_path(config.fx.rates, config_file)
        rates = report.attempt(lambda: load_fx_rates(rates_file), rates_file)
        if rates is not None:
            count = sum(len(by_date) for by_date in rates.by_currency.values())
            report.checked.append(f"{rates_file} ({count} rates)")
    if month is not None and mapping is not None and loaded is not None:
        _check_month(report, config, config_file, mapping, month)
    report.lenient = loaded is None
    return report


def as_written(config_file: Path) -> ChargebackConfig | None:
    """What the other files are found and checked by, from a config that does not load:
    the file names and cost center ids as written (defaults where absent or not text).

    So a pull request that breaks the config *and* the mapping gets both lists at once. A
    mapping row naming a cost center the broken config lost (a renamed id) is reported as
    a run would report it once the config loads. ``None`` when the YAML is not a mapping.
    """
    import yaml

    from vapi_chargeback.config import (
        MAX_CONFIG_BYTES,
        ChargebackConfig,
        ConfigError,
        CostCenter,
        read_bounded,
    )
    from vapi_chargeback.fxrates import FxSettings
    from vapi_chargeback.yamldoc import read_yaml

    try:
        text = read_bounded(config_file, MAX_CONFIG_BYTES, "chargeback.yaml").decode("utf-8-sig")
        _, data = read_yaml(text)
    except (ConfigError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    fx: dict[str, Any] = data["fx"] if isinstance(data.get("fx"), dict) else {}
    centers: list[Any] = data["cost_centers"] if isinstance(data.get("cost_centers"), list) else []
    currency = data.get("reporting_currency")

    def named(source: dict[str, Any], key: str, model: Any) -> str:
        value = source.get(key)
        return value if isinstance(value, str) and value else str(model.model_fields[key].default)

    # Unvalidated on purpose (model_construct): only these fields are read below.
    written: dict[str, Any] = {
        "mapping": named(data, "mapping", ChargebackConfig),
        "invoices": named(data, "invoices", ChargebackConfig),
        "reporting_currency": currency if isinstance(currency, str) else None,
        "fx": FxSettings(rates=named(fx, "rates", FxSettings)),
        "cost_centers": [
            CostCenter.model_construct(**{"id": center["id"], "valid_to": None})
            for center in centers
            if isinstance(center, dict) and isinstance(center.get("id"), str)
        ],
    }
    return ChargebackConfig.model_construct(**written)


def _check_month(
    report: Report, config: ChargebackConfig, config_file: Path, mapping: Any, month: str
) -> None:
    """What ``pipeline.plan_run`` checks of one month beyond the files: the month's plan
    (cost centers ended before it, their shares) and its FX rate."""
    from vapi_chargeback.fxrates import fx_rates_path, month_rate
    from vapi_chargeback.period import StatementPeriod
    from vapi_chargeback.pipeline import plan_for

    period = StatementPeriod.for_month(month, config.timezone)
    plan = report.attempt(lambda: plan_for(config, period, mapping), config_file)
    if plan is not None:
        report.checked.append(f"{month}'s plan ({len(plan.queries)} queries)")
    if config.reporting_currency is not None:
        rates_file = fx_rates_path(config.fx.rates, config_file)
        rate = report.attempt(
            lambda: month_rate(config.reporting_currency, config.fx, config_file, period),
            rates_file,
        )
        if rate is not None:
            report.checked.append(f"{month}'s {rate.currency} rate ({rate.rate})")


def _located(problem: str, where: Path) -> str:
    """A problem as ``file…: message``: loaders name the file already; the few month
    checks that name only a field (``cost_centers: …``) get the config's path."""
    return problem if problem.startswith(str(where)) else f"{where}: {problem}"


def _validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    config_file = args.config or args.config_option
    report = check(config_file, args.month)
    if report.problems:
        for problem in report.problems:
            print(problem)
        count = len(report.problems)
        print(
            f"{PROG}: {count} problem{'s' if count != 1 else ''}",
            file=sys.stderr,
        )
        if report.lenient:
            print(
                f"{PROG}: {config_file} does not load; the files it names were checked by the"
                " names and cost center ids written in it",
                file=sys.stderr,
            )
        return EXIT_ERROR
    print(f"OK: {'; '.join(report.checked)}")
    return EXIT_OK
