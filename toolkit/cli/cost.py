"""``coins cost``: what the programme costs, and what a sheet would change (see `toolkit.cost`);
and the monthly cost line ``coins plan`` adds.

Only translates — sheets and the registry in, `toolkit.cost` frames out as a table, CSV or JSON.
Exit status: 0 · 1 when a volumes, budget or what-if sheet has invalid rows (they are left out
and listed) · 2 when a sheet cannot be read or the options do not fit together.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from toolkit.cli.command import Command, positive_int
from toolkit.cli.connection import workspace
from toolkit.cli.exits import EXIT_OK, EXIT_ROWS, CliError
from toolkit.cli.output import JsonValue, emit_rows, error, limited, plain, rows, write_json

if TYPE_CHECKING:
    import pandas as pd

    from toolkit import cost as cost_rules
    from toolkit.bulk import Plan
    from toolkit.bulk.volumes import BudgetSheet, CostBasis, VolumeSheet
    from toolkit.workspace import Workspace

__all__ = ["COST", "cmd_cost", "plan_cost_line", "volumes_argument"]

_KEYS = {"company": "companyId", "event": "event"}


def volumes_argument(p: argparse.ArgumentParser) -> None:
    """``--volumes`` of ``coins plan``: the sheet its monthly cost delta is computed from."""
    p.add_argument(
        "--volumes",
        metavar="FILE",
        help="a volumes sheet (companyId, event, count[, month]) for the monthly cost delta "
        "(default: the allocations of the last 30 days)",
    )


def plan_cost_line(args: argparse.Namespace, ws: Workspace, plan: Plan) -> str | None:
    """The plan's monthly cost delta ("This sheet raises monthly cost by …"), when volumes are
    known (--volumes, else the registry's allocations of the last 30 days)."""
    from toolkit.bulk import volumes

    sheet = volumes.read_volumes(args.volumes) if getattr(args, "volumes", None) else None
    return volumes.cost_basis(ws.registry, ws.settings, volumes=sheet).plan_line(plan)


def _problems(name: str, sheet: VolumeSheet | BudgetSheet | Plan | None) -> pd.DataFrame:
    import pandas as pd

    problems = getattr(sheet, "problems", None)
    if problems is None or problems.empty:
        return pd.DataFrame()
    out = problems[["row", "column", "value", "reason"]].copy()
    out.insert(0, "sheet", name)
    return out


def _projection_rows(basis: CostBasis, records: pd.DataFrame, key: str) -> pd.DataFrame:
    from toolkit import cost

    projected = basis.projection()
    table = cost.totals(projected, key)[[key, "monthly_count", "monthly_coins", "monthly_rupees"]]
    awarded = cost.awarded(records, by=key, period=None, value=basis.value)
    table = table.merge(
        awarded[[key, "coins"]].rename(columns={"coins": "awarded_coins"}), on=key, how="left"
    )
    table["awarded_coins"] = table["awarded_coins"].fillna(0).astype("int64")
    if key == "companyId" and basis.budgets:
        table["budget"] = basis.budgets.for_companies(table["companyId"]).to_numpy()
        table["over_budget"] = (
            table["monthly_rupees"] > table["budget"].fillna(float("inf"))
        ).to_numpy()
    return table


def _what_if_rows(result: cost_rules.WhatIf, key: str) -> pd.DataFrame:
    frame = result.by_company if key == "companyId" else result.by_event
    columns = [
        key,
        "changed",
        "coins_delta",
        "rupees_before",
        "rupees_after",
        "rupees_delta",
        "pct",
    ]
    if key == "companyId" and any(frame["budget"].notna()):
        columns += ["budget", "over_budget_after"]
    moved = frame.loc[(frame["changed"] > 0) | (frame["rupees_delta"] != 0), columns]
    return moved.reset_index(drop=True)


def cmd_cost(args: argparse.Namespace) -> int:
    import pandas as pd

    from toolkit import bulk, cost
    from toolkit.bulk import volumes as vol

    if args.by == "month" and args.what_if:
        raise CliError("--by month lists coins awarded; a --what-if is per company or event")
    volume_sheet = vol.read_volumes(args.volumes) if args.volumes else None
    budget_sheet = vol.read_budgets(args.budgets) if args.budgets else None
    what_if_sheet = bulk.read_configs(args.what_if) if args.what_if else None
    with workspace(args) as ws:
        basis = vol.cost_basis(
            ws.registry, ws.settings, volumes=volume_sheet, budgets=budget_sheet, days=args.days
        )
        records = ws.registry.allocations_frame(bulk_runs=False)
        plan = None
        if what_if_sheet is not None:
            validation = bulk.validate(what_if_sheet, registry=ws.registry)
            plan = bulk.plan(validation, ws.registry, mode=args.mode)

    problems = pd.concat(
        [
            _problems("volumes", volume_sheet),
            _problems("budgets", budget_sheet),
            _problems("what-if", plan)
            if plan is not None and len(plan.problems)
            else pd.DataFrame(),
        ],
        ignore_index=True,
    )
    invalid = (
        bool(volume_sheet is not None and volume_sheet.errors)
        or bool(budget_sheet is not None and budget_sheet.errors)
        or bool(plan is not None and plan.counts.get("invalid", 0))
    )
    summary: dict[str, JsonValue] = {
        "value": basis.value.note,
        "rupees_per_coin": basis.value.rupees_per_coin,
        "value_assumed": basis.value.assumed,
        "volumes": basis.volume_source,
    }
    # What the table closes with, for people (JSON gets `summary`).
    monthly_rupees: float | None = None
    over_budget: list[str] = []
    what_if_lines: tuple[str, str] | None = None
    awarded: tuple[int, float] | None = None
    if args.by == "month":
        table = cost.awarded(records, by=[], period="month", value=basis.value)
        table.insert(0, "month", pd.to_datetime(table.pop("period")).dt.strftime("%Y-%m"))
        awarded = int(table["coins"].sum()), float(table["rupees"].sum())
        summary["coins_awarded"], summary["rupees_awarded"] = awarded
    else:
        key = _KEYS[args.by]
        if plan is None:
            table = _projection_rows(basis, records, key)
            monthly_rupees = float(table["monthly_rupees"].sum())
            summary["monthly_rupees"] = monthly_rupees
            summary["monthly_coins"] = float(table["monthly_coins"].sum())
            if "over_budget" in table.columns:
                over_budget = [str(c) for c in table.loc[table["over_budget"], "companyId"]]
                summary["over_budget"] = plain(over_budget)
        else:
            result = basis.what_if(cost.changes_from_plan(plan))
            table = _what_if_rows(result, key)
            name = what_if_sheet.source_name if what_if_sheet is not None else args.what_if
            what_if_lines = f"{name}: {plan.summary()}", f"This sheet {result.summary()}"
            summary["what_if"], summary["line"] = what_if_lines
            summary["total"] = plain(result.total)
            summary["newly_over_budget"] = plain(result.newly_over_budget)
    code = EXIT_ROWS if invalid else EXIT_OK

    if args.format == "json":
        write_json(
            {
                "by": args.by,
                **{k: plain(v) for k, v in summary.items()},
                "rows": rows(table)[1],
                "problems": rows(problems)[1] if len(problems) else [],
                "exit_status": code,
            }
        )
        return code
    if args.format == "csv":
        emit_rows(args, table)
        if len(problems):
            error(f"{len(problems)} problem(s) in the sheets; --format table lists them")
        return code
    if len(problems):
        print(f"rows left out ({len(problems):,} problems):")
        emit_rows(args, limited(args, problems, "problems"))
        print()
    emit_rows(args, limited(args, cost.for_people(table), "rows"))
    print()
    print(f"volumes: {summary['volumes']}")
    print(f"value: {summary['value']}")
    if monthly_rupees is not None:
        print(
            f"projected monthly cost: {cost.format_inr(monthly_rupees)} "
            f"({cost.format_inr(monthly_rupees, exact=True)})"
        )
        if over_budget:
            print("over budget: " + ", ".join(over_budget))
    if what_if_lines is not None:
        print(f"what-if: {what_if_lines[0]}")
        print(what_if_lines[1])
    if awarded is not None:
        print(
            f"coins awarded: {cost.group_indian(awarded[0])} "
            f"({cost.format_inr(awarded[1], exact=True)})"
        )
    return code


def _cost_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--volumes",
        metavar="FILE",
        help="volumes sheet: companyId, event, count[, month] (default: the allocations "
        "recorded over the last --days days, scaled to a month)",
    )
    p.add_argument(
        "--what-if",
        metavar="SHEET",
        dest="what_if",
        help="a configuration sheet: the monthly cost before, after and the delta",
    )
    p.add_argument(
        "--by",
        choices=["company", "event", "month"],
        default="company",
        help="rows per company (default) or event (projection, what-if), or per month "
        "(coins awarded so far)",
    )
    p.add_argument(
        "--days",
        type=positive_int,
        default=30,
        metavar="N",
        help="history window for volumes (default 30 days)",
    )
    p.add_argument(
        "--budgets",
        metavar="FILE",
        help="budget sheet: companyId, budget (₹ a month; default COINS_MONTHLY_BUDGET)",
    )
    p.add_argument(
        "--mode",
        choices=["create", "upsert"],
        default="upsert",
        help="how the --what-if sheet would be applied (default upsert)",
    )


COST = Command(
    "cost",
    cmd_cost,
    help="what the programme costs, and what a sheet would change",
    description="Coins awarded (from the allocations the toolkit recorded), the projected "
    "monthly\ncost per company or event (volume × configured amount × COINS_RUPEES_PER_COIN;\n"
    "₹1 a coin is assumed, and said, when it is unset), and with --what-if a sheet's\n"
    "cost before, after and the delta, with companies it takes over budget.",
    example="coins cost --volumes volumes.csv --by event\n"
    "  coins cost --what-if raise-referrals.csv --format json\n"
    "  coins cost --by month",
    arguments=_cost_arguments,
)
