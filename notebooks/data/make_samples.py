"""Write the sample sheets the notebooks use: `configs_sample.csv` and `allocations_sample.csv`.

Deterministic (a fixed seed, no clock): running it again rewrites the same bytes, so the
committed files and this script never disagree. Run from anywhere:

    .venv/bin/python notebooks/data/make_samples.py

Company and user ids follow EnKash's shapes (CEKEKCARDS, EKQZVMQK) but differ from the
sandbox's demo data, so the sample never collides with what the embedded sandbox is seeded with.

The configuration sheet is what an analyst would really hand in: 10 companies x 20 events,
a few pairs left out (coverage gaps for notebook 02), one outlier and one switched-off event
(warnings), and five deliberate mistakes that validation must catch and explain:

| row kind | what is wrong |
| --- | --- |
| decimal amount | `7.5` coins |
| lower-case company | `cek9qwn4tx` instead of `CEK9QWN4TX` |
| duplicate pair | a second `CEKHYDMART, MEAL_CARD_PAYMENT` row with a different amount |
| missing event | the event cell is blank |
| configuration typo | `DEFUALT` |

The allocation sheet awards coins to users for events the configuration sheet creates, with
explicit request ids (re-running it allocates nothing twice), plus one row for a pair that has
no configuration and one malformed user id.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611

COMPANIES = [
    "CEKHYDMART",
    "CEK9QWN4TX",
    "CEK7HQ2M4P",
    "CEKB19XR3D",
    "CEKN4VW8TS",
    "CEKZ62LMQA",
    "CEK3FJ9Y0C",
    "CEKR8DK5UE",
    "CEKM0PX7GH",
    "CEKW5TB2NJ",
]

# Event → standard (DEFAULT) coins. Cheap, frequent events earn little; rare ones earn more.
EVENTS = {
    "MEAL_CARD_PAYMENT": 6,
    "REFERRAL_EVENT": 100,
    "INVOICE_PAYMENT": 10,
    "FUEL_CARD_PAYMENT": 5,
    "GIFT_CARD_PURCHASE": 8,
    "TRAVEL_BOOKING": 25,
    "UTILITY_BILL_PAYMENT": 4,
    "VENDOR_PAYMENT": 12,
    "PREPAID_CARD_LOAD": 3,
    "CORPORATE_CARD_SPEND": 2,
    "EXPENSE_REPORT_APPROVED": 5,
    "UPI_COLLECTION": 1,
    "GST_PAYMENT": 15,
    "RENT_PAYMENT": 20,
    "PAYROLL_DISBURSAL": 50,
    "FIRST_CARD_ACTIVATION": 200,
    "KYC_COMPLETED": 150,
    "BBPS_BILL_PAYMENT": 4,
    "WALLET_TOPUP": 2,
    "ANNUAL_RENEWAL": 500,
}

# Pairs nobody configured (coverage gaps). Two of them are where the mistakes below land.
GAPS = {
    ("CEK9QWN4TX", "GST_PAYMENT"),
    ("CEK7HQ2M4P", "ANNUAL_RENEWAL"),
    ("CEKN4VW8TS", "FUEL_CARD_PAYMENT"),
    ("CEKZ62LMQA", "RENT_PAYMENT"),
    ("CEKR8DK5UE", "KYC_COMPLETED"),
    ("CEKW5TB2NJ", "TRAVEL_BOOKING"),
}

USERS = [
    "EK7FQZ2N",
    "EK6CYE6K",
    "EK2RJ8TB",
    "EKH4MZ0P",
    "EK9WQXAL",
    "EKT7BN3C",
    "EK0DVF5S",
    "EKLP2K8Y",
    "EKC3XU6R",
    "EKJ5NE1W",
    "EKV8GH4D",
    "EKA1SQ9M",
]

HEADER = ["companyId", "event", "configuration", "amount", "notes"]


def config_rows(rng: random.Random) -> list[dict[str, str]]:
    """The configuration sheet's rows, in the order an analyst would keep them."""
    rows: list[dict[str, str]] = []
    for company in COMPANIES:
        for event, standard in EVENTS.items():
            if (company, event) in GAPS:
                continue
            if rng.random() < 0.3:
                factor = rng.choice([0.5, 1.5, 2, 3])
                rows.append(
                    {
                        "companyId": company,
                        "event": event,
                        "configuration": "CUSTOM",
                        "amount": str(max(1, round(standard * factor))),
                        "notes": rng.choice(["", "", "negotiated rate", "pilot Q3"]),
                    }
                )
            else:
                rows.append(
                    {
                        "companyId": company,
                        "event": event,
                        "configuration": "DEFAULT",
                        "amount": str(standard),
                        "notes": "",
                    }
                )

    def find(company: str, event: str) -> dict[str, str]:
        return next(r for r in rows if r["companyId"] == company and r["event"] == event)

    # Warnings, not errors: an outlier (20x the event's usual amount) and an event switched off.
    find("CEKB19XR3D", "MEAL_CARD_PAYMENT").update(
        configuration="CUSTOM", amount="120", notes="festive offer, approved by finance"
    )
    find("CEKM0PX7GH", "WALLET_TOPUP").update(
        configuration="DEFAULT", amount="0", notes="switched off for this company"
    )
    # Mistakes that replace a value in an existing row.
    find("CEK3FJ9Y0C", "INVOICE_PAYMENT").update(configuration="CUSTOM", amount="7.5")
    find("CEKZ62LMQA", "VENDOR_PAYMENT").update(configuration="DEFUALT")

    # Mistakes that are extra rows, placed where an analyst would have typed them.
    def insert_after(anchor: dict[str, str], row: dict[str, str]) -> None:
        rows.insert(rows.index(anchor) + 1, row)

    insert_after(
        find("CEK9QWN4TX", "FUEL_CARD_PAYMENT"),
        {
            "companyId": "cek9qwn4tx",
            "event": "GST_PAYMENT",
            "configuration": "DEFAULT",
            "amount": "15",
            "notes": "",
        },
    )
    insert_after(
        find("CEKR8DK5UE", "FIRST_CARD_ACTIVATION"),
        {
            "companyId": "CEKR8DK5UE",
            "event": "",
            "configuration": "CUSTOM",
            "amount": "300",
            "notes": "KYC bonus",
        },
    )
    insert_after(
        find("CEKHYDMART", "ANNUAL_RENEWAL"),
        {
            "companyId": "CEKHYDMART",
            "event": "MEAL_CARD_PAYMENT",
            "configuration": "CUSTOM",
            "amount": "8",
            "notes": "copied from last quarter's sheet",
        },
    )
    return rows


def allocation_rows(rng: random.Random, configs: list[dict[str, str]]) -> list[dict[str, str]]:
    """Allocations for users over pairs the configuration sheet really creates."""
    # Only pairs whose row is valid: the mistakes and their duplicates are left out.
    seen: set[tuple[str, str]] = set()
    creatable: list[tuple[str, str]] = []
    for row in configs:
        pair = (row["companyId"], row["event"])
        if pair in seen:
            continue
        seen.add(pair)
        if (
            row["companyId"].isupper()
            and row["event"]
            and row["configuration"] in ("DEFAULT", "CUSTOM")
            and row["amount"].isdigit()
        ):
            creatable.append(pair)
    frequent = [p for p in creatable if EVENTS[p[1]] <= 25]
    rare = [p for p in creatable if EVENTS[p[1]] > 25]

    rows: list[dict[str, str]] = []
    for user in USERS:
        # Each user works for one company; a few transactions, now and then a bonus event.
        company = rng.choice(COMPANIES)
        own = [p for p in frequent if p[0] == company]
        picks = rng.sample(own, k=min(len(own), rng.randint(3, 6)))
        if rng.random() < 0.4:
            picks.append(rng.choice([p for p in rare if p[0] == company]))
        for pair in picks:
            rows.append({"companyId": pair[0], "event": pair[1], "userId": user})

    rows.sort(key=lambda r: (r["userId"], r["companyId"], r["event"]))
    # Deliberate mistakes: a pair nobody configured, and a user id with a space in it.
    rows.insert(5, {"companyId": "CEKW5TB2NJ", "event": "TRAVEL_BOOKING", "userId": USERS[0]})
    rows.insert(17, {"companyId": COMPANIES[1], "event": "MEAL_CARD_PAYMENT", "userId": "EK 6CYE"})
    for number, row in enumerate(rows, start=1):
        row["requestId"] = f"COIN_REQ{2024061100 + number}"
    return rows


def write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(SEED)
    configs = config_rows(rng)
    allocations = allocation_rows(rng, configs)
    write(HERE / "configs_sample.csv", HEADER, configs)
    write(
        HERE / "allocations_sample.csv", ["companyId", "event", "userId", "requestId"], allocations
    )
    print(f"configs_sample.csv: {len(configs)} rows; allocations_sample.csv: {len(allocations)}")


if __name__ == "__main__":
    main()
