"""Realistic demo data: a few Indian B2B companies × ~15 events, and users with balances.

Deterministic (a fixed seed), so screenshots, notebooks and docs show the same ids every time.
The first two rows reuse the EnKash portal's own example ids.
"""

from __future__ import annotations

import random
from typing import Any

from toolkit.sandbox.store import Store

__all__ = ["DEMO_COMPANIES", "DEMO_EVENTS", "demo_rows", "seed_demo"]

DEMO_COMPANIES: tuple[str, ...] = (
    "CEKEKCARDS",
    "CEK0TCW2W8",
    "CEKINFRA24",
    "CEKMAHLOG7",
    "CEKPUNFIN3",
    "CEKBLRTECH",
)

# Event -> the standard (DEFAULT) number of coins it earns.
DEMO_EVENTS: dict[str, int] = {
    "MEAL_CARD_PAYMENT": 6,
    "REFERRAL_EVENT": 100,
    "INVOICE_PAYMENT": 10,
    "FUEL_CARD_PAYMENT": 5,
    "VENDOR_PAYMENT": 8,
    "GIFT_CARD_PURCHASE": 15,
    "TRAVEL_BOOKING": 25,
    "UTILITY_BILL_PAYMENT": 4,
    "GST_PAYMENT": 12,
    "PAYROLL_CREDIT": 20,
    "CORPORATE_CARD_SPEND": 3,
    "EXPENSE_CLAIM_APPROVED": 7,
    "FIRST_TRANSACTION": 50,
    "KYC_COMPLETED": 30,
    "UPI_COLLECTION": 2,
}

_DEMO_USERS: tuple[str, ...] = ("EKQZVMQK", "EKR4T7PA", "EKM2N8WD", "EKH5J3XC", "EKB9L6QS")
_PORTAL_EXAMPLES: dict[tuple[str, str], tuple[str, str, int]] = {
    ("CEKEKCARDS", "MEAL_CARD_PAYMENT"): ("WCC817428", "DEFAULT", 6),
    ("CEK0TCW2W8", "INVOICE_PAYMENT"): ("WCC024845", "DEFAULT", 10),
}


def demo_rows(seed: int = 2024) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo configurations and allocations (camelCase keys, allocations by requestId)."""
    rng = random.Random(seed)
    events = list(DEMO_EVENTS)
    configs: list[dict[str, Any]] = []
    for index, company in enumerate(DEMO_COMPANIES):
        # The first company runs the whole programme; the others a large subset each.
        chosen = events if index == 0 else sorted(rng.sample(events, rng.randint(9, 14)))
        for event in chosen:
            example = _PORTAL_EXAMPLES.get((company, event))
            if example is not None:
                config_id, configuration, amount = example
                configs.append(
                    {
                        "coinConfigId": config_id,
                        "companyId": company,
                        "event": event,
                        "configuration": configuration,
                        "amount": amount,
                    }
                )
                continue
            standard = DEMO_EVENTS[event]
            if rng.random() < 0.3:
                configuration = "CUSTOM"
                amount = max(0, round(standard * rng.choice((0, 0.5, 1.5, 2, 3))))
            else:
                configuration, amount = "DEFAULT", standard
            configs.append(
                {
                    "companyId": company,
                    "event": event,
                    "configuration": configuration,
                    "amount": amount,
                }
            )
    # Some (company, event) pairs earn coins for the demo users.
    pairs = [(c["companyId"], c["event"]) for c in configs if c["amount"] > 0]
    allocations: list[dict[str, Any]] = []
    for user in _DEMO_USERS:
        for _ in range(rng.randint(2, 6)):
            company, event = rng.choice(pairs)
            allocations.append(
                {
                    "requestId": f"DEMO_REQ{len(allocations) + 1:06d}",
                    "userId": user,
                    "companyId": company,
                    "event": event,
                }
            )
    return configs, allocations


def seed_demo(store: Store, seed: int = 2024) -> bool:
    """Load the demo data into an empty database; False (and nothing changed) otherwise."""
    configs, allocations = demo_rows(seed)
    return store.seed(configs, allocations, rng=random.Random(seed))
