"""``coins cost``: what the programme costs, and what a sheet would change (see `toolkit.cost`).

Kept beside ``toolkit/cli.py``, which declares the command and its options; this module only
translates — sheets and the registry in, `toolkit.cost` frames out as a table, CSV or JSON.

Exit status: 0 · 1 when a volumes, budget or what-if sheet has invalid rows (they are left out
and listed) · 2 when a sheet cannot be read or the options do not fit together.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from toolkit import bulk, cli, cost
from toolkit.bulk import volumes as vol

__all__ = ["run_cost"]

_KEYS = {"company": "companyId", "event": "event"}


def _problems(name: str, sheet: Any) -> pd.DataFrame:
    problems = getattr(sheet, "problems", None)
    if problems is None or problems.empty:
        return pd.DataFrame()
    out = problems[["row", "column", "value", "reason"]].copy()
    out.insert(0, "sheet", name)
    return out


def _projection_rows(basis: vol.CostBasis, records: pd.DataFrame, key: str) -> pd.DataFrame:
    projected = basis.projection()
    rows = cost.totals(projected, key)[[key, "monthly_count", "monthly_coins", "monthly_rupees"]]
    awarded = cost.awarded(records, by=key, period=None, value=basis.value)
    rows = rows.merge(
        awarded[[key, "coins"]].rename(columns={"coins": "awarded_coins"}), on=key, how="left"
    )
    rows["awarded_coins"] = rows["awarded_coins"].fillna(0).astype("int64")
    if key == "companyId" and basis.budgets:
        rows["budget"] = basis.budgets.for_companies(rows["companyId"]).to_numpy()
        rows["over_budget"] = (
            rows["monthly_rupees"] > rows["budget"].fillna(float("inf"))
        ).to_numpy()
    return rows


def _what_if_rows(result: cost.WhatIf, key: str) -> pd.DataFrame:
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


def run_cost(args: argparse.Namespace) -> int:
    """The ``coins cost`` command (its options are declared in ``toolkit.cli``)."""
    if args.by == "month" and args.what_if:
        raise cli.CliError("--by month lists coins awarded; a --what-if is per company or event")
    volume_sheet = vol.read_volumes(args.volumes) if args.volumes else None
    budget_sheet = vol.read_budgets(args.budgets) if args.budgets else None
    what_if_sheet = bulk.read_configs(args.what_if) if args.what_if else None
    with cli._workspace(args) as ws:
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
    summary: dict[str, Any] = {
        "value": basis.value.note,
        "rupees_per_coin": basis.value.rupees_per_coin,
        "value_assumed": basis.value.assumed,
        "volumes": basis.volume_source,
    }
    if args.by == "month":
        rows = cost.awarded(records, by=[], period="month", value=basis.value)
        rows.insert(0, "month", pd.to_datetime(rows.pop("period")).dt.strftime("%Y-%m"))
        summary["coins_awarded"] = int(rows["coins"].sum())
        summary["rupees_awarded"] = float(rows["rupees"].sum())
    else:
        key = _KEYS[args.by]
        if plan is None:
            rows = _projection_rows(basis, records, key)
            total = float(rows["monthly_rupees"].sum())
            summary["monthly_rupees"] = total
            summary["monthly_coins"] = float(rows["monthly_coins"].sum())
            if "over_budget" in rows.columns:
                summary["over_budget"] = rows.loc[rows["over_budget"], "companyId"].tolist()
        else:
            result = basis.what_if(cost.changes_from_plan(plan))
            rows = _what_if_rows(result, key)
            name = what_if_sheet.source_name if what_if_sheet is not None else args.what_if
            summary["what_if"] = f"{name}: {plan.summary()}"
            summary["line"] = f"This sheet {result.summary()}"
            summary["total"] = result.total
            summary["newly_over_budget"] = result.newly_over_budget
    code = cli.EXIT_ROWS if invalid else cli.EXIT_OK

    if args.format == "json":
        cli._write_json(
            {
                "by": args.by,
                **{k: cli._plain(v) for k, v in summary.items()},
                "rows": cli._rows(rows)[1],
                "problems": cli._rows(problems)[1] if len(problems) else [],
                "exit_status": code,
            }
        )
        return code
    if args.format == "csv":
        cli._emit_rows(args, rows)
        if len(problems):
            cli._error(f"{len(problems)} problem(s) in the sheets; --format table lists them")
        return code
    if len(problems):
        print(f"rows left out ({len(problems):,} problems):")
        cli._emit_rows(args, cli._limited(args, problems, "problems"))
        print()
    cli._emit_rows(args, cli._limited(args, cost.for_people(rows), "rows"))
    print()
    print(f"volumes: {summary['volumes']}")
    print(f"value: {summary['value']}")
    if "monthly_rupees" in summary:
        rupees = summary["monthly_rupees"]
        print(
            f"projected monthly cost: {cost.format_inr(rupees)} "
            f"({cost.format_inr(rupees, exact=True)})"
        )
        if summary.get("over_budget"):
            print("over budget: " + ", ".join(summary["over_budget"]))
    if "line" in summary:
        print(f"what-if: {summary['what_if']}")
        print(summary["line"])
    if "coins_awarded" in summary:
        print(
            f"coins awarded: {cost.group_indian(summary['coins_awarded'])} "
            f"({cost.format_inr(summary['rupees_awarded'], exact=True)})"
        )
    return code
