"""`coins doctor`: learn how a server answers before trusting it with real work.

EnKash documents only its success answers. Whether a lost create or allocation may be sent
again safely depends on answers nobody documents — a second create of a pair, a repeated
requestId — so the doctor asks the server itself and keeps what it learnt as a server profile
(`toolkit.profiles`), which the client then follows:

1. one login (``expires_in`` as answered against EnKash's 5-minute rule, token field style);
2. a call with a garbage token (how a refused token looks);
3. a get of an id that does not exist (how "not found" looks);
4. only with a scratch company given explicitly (and confirmed by the caller): a scratch
   configuration of amount 0, a second create of the same pair (refused? id named?), and two
   allocations of one requestId to a scratch user (repeat refused, or accepted silently?).
   Amount 0 means no coin is ever awarded; if the scratch pair already exists with another
   amount, no allocation is made.

Never more than one login; everything created is listed. The embedded sandbox is profiled
this way on first use without asking (`profile_embedded`).
"""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.answers import Answer, Meaning, config_payload, whole_number
from toolkit.errors import EnKashError
from toolkit.models import check_company_id
from toolkit.profiles import ServerProfile, load_profile, save_profile

if TYPE_CHECKING:
    from toolkit.client import CoinsClient

__all__ = [
    "PROBE_EVENT",
    "PROBE_USER",
    "SANDBOX_SCRATCH_COMPANY",
    "DoctorReport",
    "load_server_profile",
    "probe_embedded",
    "profile_embedded",
    "run_doctor",
]

logger = logging.getLogger(__name__)

PROBE_EVENT = "TOOLKIT_DOCTOR_PROBE"
PROBE_USER = "TOOLKITDOCTOR"
SANDBOX_SCRATCH_COMPANY = "ZZDOCTOR"

_CREATE = "/api/v0/enkash-coins/create-coins-config"
_GET = "/api/v0/enkash-coins/"
_ALLOCATE = "/api/v0/enkash-coins/allocate-coin"
_BALANCE = "/api/v0/coins/balance"


@dataclass
class DoctorReport:
    """What the doctor did and found; ``profile`` is what the client will follow."""

    server: str
    profile: ServerProfile
    steps: list[str] = field(default_factory=list)  # what was asked and what it answered
    created: list[str] = field(default_factory=list)  # scratch configurations made
    allocations: list[str] = field(default_factory=list)  # requestIds sent (0 coins)
    saved_to: Path | None = None

    def lines(self) -> list[str]:
        out = [f"Server: {self.server}", "", "Found:"]
        out += [f"  - {s}" for s in self.steps]
        out += ["", "So the toolkit will:"]
        out += [f"  - {line}" for line in self.profile.describe()]
        out += ["", "Created on the server:"]
        if self.created or self.allocations:
            out += [f"  - configuration {c} (amount 0)" for c in self.created]
            out += [f"  - allocation requestId {r} (0 coins)" for r in self.allocations]
        else:
            out.append("  - nothing")
        if self.saved_to is not None:
            out += ["", f"Profile kept in {self.saved_to}"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "profile": self.profile.to_dict(),
            "steps": list(self.steps),
            "created": list(self.created),
            "allocations": list(self.allocations),
            "saved_to": str(self.saved_to) if self.saved_to else None,
        }


def _look(answer: Answer) -> str:
    code = f", code {answer.code}" if answer.code not in (None, 0) else ""
    said = f': "{answer.message[:80]}"' if answer.message else ""
    return f"HTTP {answer.http_status}{code}{said} → read as {answer.meaning.value}"


def run_doctor(
    client: CoinsClient,
    *,
    scratch_company: str | None = None,
    home: str | Path | None = None,
) -> DoctorReport:
    """Probe ``client``'s server; keep the profile under ``home`` when given.

    ``scratch_company`` must be given explicitly (and confirmed by the surface) for the write
    probes; without it only the login, a refused token and a missing id are looked at, and
    repeats stay "unknown" (the cautious case).
    """
    quiet = copy.copy(client)
    quiet.recorder = None  # probes are not the analyst's work: kept out of the audit log
    report = DoctorReport(server=client.base_url, profile=ServerProfile(client.server_key))
    profile = report.profile

    quiet.login()
    login = quiet.login_answer()
    answered, life = login.get("expires_in"), login.get("life_s")
    if login:
        report.steps.append(
            "login: "
            + (f"expires_in {answered:g} s answered" if answered else "no expires_in answered")
            + f", renewed as a {life:g} s token ({login.get('style') or 'unknown'} fields)"
        )
    else:
        report.steps.append("login: a given access token is used (no login made)")
    profile = replace(
        profile,
        token_expires_in_answered=answered,
        token_life_used_s=life,
        token_style=login.get("style"),
    )

    garbage = quiet.diagnose(
        "GET", _BALANCE, params={"userId": PROBE_USER}, token="not-a-token-" + uuid.uuid4().hex
    )
    report.steps.append(f"a garbage token: {_look(garbage)}")
    profile = replace(profile, auth_failure=_look(garbage))
    if garbage.meaning is not Meaning.TOKEN_INVALID:
        profile = replace(
            profile,
            notes=(
                *profile.notes,
                "Warning: a garbage token was not answered as an auth failure "
                f"({garbage.meaning.value}); expired tokens may be missed.",
            ),
        )

    missing = quiet.diagnose("GET", _GET + "ZZNOSUCHID" + uuid.uuid4().hex[:8].upper())
    not_found = missing.meaning is Meaning.NOT_FOUND or (
        missing.ok and missing.payload in (None, "", {}, [])
    )
    report.steps.append(
        f"an unknown id: {_look(missing)}" + ("" if not_found else " (not recognised as missing)")
    )
    profile = replace(profile, not_found=_look(missing))

    if scratch_company is not None:
        company, reason = check_company_id(scratch_company)
        if reason is not None or company is None:
            raise ValueError(f"--scratch-company {scratch_company!r} {reason}")
        profile = _probe_writes(quiet, company, report, profile)

    report.profile = profile.stamped()
    if home is not None:
        report.saved_to = save_profile(home, report.profile)
    return report


def _config_id(answer: Answer) -> str | None:
    if answer.ok and isinstance(answer.payload, dict):
        return config_payload(answer.payload)[0].get("coinConfigId")
    return None


def _probe_writes(
    client: CoinsClient, company: str, report: DoctorReport, profile: ServerProfile
) -> ServerProfile:
    body = {"companyId": company, "event": PROBE_EVENT, "configuration": "DEFAULT", "amount": 0}
    first = client.diagnose("POST", _CREATE, json=body, write="create")
    report.steps.append(f"create {company}/{PROBE_EVENT} (amount 0): {_look(first)}")
    first_id = _config_id(first)
    if first_id:
        report.created.append(first_id)
        second = client.diagnose("POST", _CREATE, json=body, write="create")
        report.steps.append(f"the same create again: {_look(second)}")
        second_id = _config_id(second)
        if second_id:
            report.created.append(second_id)
            repeat = "accepted"
        else:
            repeat = _refusal(client, second, company, first_id)
    else:
        # The pair exists already (an earlier probe): this answer is the repeat.
        repeat = _refusal(client, first, company, None)
    profile = replace(profile, create_repeat=repeat)
    if repeat == "unknown":
        return profile

    # Allocate only against a configuration known to award 0 coins.
    amount = _scratch_amount(client, report.created[-1:] or _named(first), company)
    if amount != 0:
        report.steps.append(
            f"allocations not probed: {company}/{PROBE_EVENT} awards {amount} coins, not 0"
        )
        return profile
    request_id = "DOCTOR" + uuid.uuid4().hex[:20].upper()
    alloc = {"companyId": company, "event": PROBE_EVENT, "requestId": request_id}
    alloc["userId"] = PROBE_USER
    once = client.diagnose("POST", _ALLOCATE, json=alloc, write="allocate")
    report.allocations.append(request_id)
    report.steps.append(f"allocate requestId {request_id} (0 coins): {_look(once)}")
    if not once.ok:
        return profile
    twice = client.diagnose("POST", _ALLOCATE, json=alloc, write="allocate")
    report.steps.append(f"the same requestId again: {_look(twice)}")
    if twice.ok:
        allocate_repeat = "accepted"
    elif twice.meaning in (Meaning.DUPLICATE_REQUEST, Meaning.EXISTS):
        allocate_repeat = "refused"
    else:
        allocate_repeat = "unknown"
    return replace(profile, allocate_repeat=allocate_repeat)


def _named(answer: Answer) -> list[str]:
    return list(answer.existing_ids)


def _refusal(client: CoinsClient, answer: Answer, company: str, made: str | None) -> str:
    """How a repeated create was answered: refused naming the existing id, refused, or not."""
    if answer.meaning is not Meaning.EXISTS:
        return "unknown"
    for candidate in answer.existing_ids:
        if made is not None and candidate != made:
            continue
        fetched = client.diagnose("GET", _GET + candidate)
        if fetched.ok and isinstance(fetched.payload, dict):
            known = config_payload(fetched.payload)[0]
            if known.get("event") in (None, PROBE_EVENT) and known.get("companyId") in (
                None,
                company,
            ):
                return "refused_names_id"
    return "refused"


def _scratch_amount(client: CoinsClient, ids: list[str], company: str) -> int | None:
    for candidate in ids:
        try:
            fetched = client.diagnose("GET", _GET + candidate)
        except EnKashError:
            continue
        if fetched.ok and isinstance(fetched.payload, dict):
            known = config_payload(fetched.payload)[0]
            if known.get("companyId") in (None, company) and known.get("event") in (
                None,
                PROBE_EVENT,
            ):
                return whole_number(known.get("amount"))
    return None


def probe_embedded(client: CoinsClient, home: str | Path) -> DoctorReport:
    """Probe the embedded sandbox without asking (it is ours) and keep its profile.

    The write probes run against a private sandbox of the same dialect started for the
    purpose, so the analyst's sandbox never holds a scratch configuration.
    """
    from toolkit.client import CoinsClient
    from toolkit.sandbox import start_sandbox

    dialect = getattr(_embedded_handle(home), "dialect", None)
    with (
        start_sandbox(dialect=dialect) as twin,
        CoinsClient(
            base_url=twin.url,
            client_id=twin.credentials["client_id"],
            client_secret=twin.credentials["client_secret"],
            username=twin.credentials["username"],
            password=twin.credentials["password"],
            timeout_s=client.timeout_s,
        ) as probe,
    ):
        report = run_doctor(probe, scratch_company=SANDBOX_SCRATCH_COMPANY)
    report.server = client.base_url
    report.steps.append(
        f"(the write probes ran on a private sandbox of the same dialect, {dialect!r}: "
        "nothing was created in this one)"
    )
    report.created, report.allocations = [], []
    report.profile = replace(report.profile, server_key=client.server_key, dialect=dialect)
    report.saved_to = save_profile(home, report.profile)
    return report


def profile_embedded(client: CoinsClient, home: str | Path) -> ServerProfile:
    """The embedded sandbox's profile: kept, or probed now without asking."""
    dialect = getattr(_embedded_handle(home), "dialect", None)
    kept = load_profile(home, client.server_key)
    if kept is not None and kept.dialect == dialect:
        return kept
    try:
        return probe_embedded(client, home).profile
    except EnKashError as exc:  # the sandbox misbehaving must not stop the app from opening
        logger.warning("Could not profile the embedded sandbox: %s", exc)
        return ServerProfile(client.server_key)


def _embedded_handle(home: str | Path) -> Any:
    from toolkit.sandbox import embedded

    return embedded(home)


def load_server_profile(home: str | Path, server_key: str) -> ServerProfile | None:
    """The kept profile of a server (for surfaces: the app's sidebar, `coins doctor --show`)."""
    return load_profile(home, server_key)
