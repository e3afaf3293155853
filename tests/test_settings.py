"""Settings come from the environment over `.env`, and never show a secret."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_support import run_coins

from toolkit.client import CoinsClient
from toolkit.settings import (
    SANDBOX_CREDENTIALS,
    Limits,
    Settings,
    SettingsError,
    check_dotenv_permissions,
)


def test_no_base_url_means_the_embedded_sandbox_with_its_credentials(tmp_path: Path) -> None:
    settings = Settings.from_env({}, dotenv_path=tmp_path / "missing.env")
    assert settings.uses_sandbox
    assert settings.client_id == SANDBOX_CREDENTIALS["client_id"]
    assert settings.timeout_s == 15.0
    assert settings.registry_path == Path(".coins") / "registry.sqlite3"


def test_environment_wins_over_the_dotenv_file(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "ENKASH_BASE_URL=https://from-file.example/\nENKASH_USERNAME=file-user\n"
        "ENKASH_CLIENT_ID=file-client\nENKASH_CLIENT_SECRET=file-secret\n"
        "ENKASH_PASSWORD=file-password\n"
        "ENKASH_TIMEOUT_S=7\nCOINS_HOME=" + str(tmp_path / "home") + "\n"
    )
    settings = Settings.from_env({"ENKASH_USERNAME": "env-user"}, dotenv_path=dotenv)
    assert settings.base_url == "https://from-file.example"  # trailing slash dropped
    assert settings.username == "env-user"
    assert settings.timeout_s == 7.0
    assert settings.home == tmp_path / "home"
    assert not settings.uses_sandbox


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_timeout_is_refused_with_the_variable_named(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ENKASH_TIMEOUT_S"):
        Settings.from_env({"ENKASH_TIMEOUT_S": value}, dotenv_path=tmp_path / "none")


def test_secrets_never_appear_in_repr_or_describe(tmp_path: Path) -> None:
    secrets = {
        "ENKASH_CLIENT_SECRET": "top-secret-client",
        "ENKASH_PASSWORD": "hunter2-password",
        "ENKASH_ACCESS_TOKEN": "tok-abcdef-123456",
        "ENKASH_COOKIE": "JSESSIONID=cookie-value",
    }
    env = {
        "ENKASH_BASE_URL": "https://enkash.example",
        "ENKASH_CLIENT_ID": "client-id",
        "ENKASH_USERNAME": "someone@example.com",
        **secrets,
    }
    settings = Settings.from_env(env, dotenv_path=tmp_path / "none")
    shown = repr(settings) + str(settings.describe())
    for secret in secrets.values():
        assert secret not in shown
    assert settings.describe()["password"].startswith("•")


# -- sandbox credentials are for the sandbox only -------------------------------------------

REAL = {
    "ENKASH_BASE_URL": "https://api.enkash.example",
    "ENKASH_CLIENT_ID": "real-client",
    "ENKASH_CLIENT_SECRET": "real-secret",
    "ENKASH_USERNAME": "analyst@company.example",
    "ENKASH_PASSWORD": "real-password",
}


@pytest.mark.parametrize(
    "left_out",
    [
        ("ENKASH_CLIENT_SECRET",),
        ("ENKASH_PASSWORD",),
        ("ENKASH_CLIENT_ID", "ENKASH_USERNAME"),
        ("ENKASH_CLIENT_ID", "ENKASH_CLIENT_SECRET", "ENKASH_USERNAME", "ENKASH_PASSWORD"),
    ],
)
def test_a_real_server_without_all_its_credentials_is_an_error_naming_the_missing_ones(
    left_out: tuple[str, ...], tmp_path: Path
) -> None:
    env = {k: v for k, v in REAL.items() if k not in left_out}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env, dotenv_path=tmp_path / "none")
    message = str(caught.value)
    for name in left_out:
        assert name in message
    for name in set(REAL) - set(left_out) - {"ENKASH_BASE_URL"}:
        assert name not in message
    for secret in SANDBOX_CREDENTIALS.values():
        assert secret not in message


def test_a_blank_value_counts_as_missing(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in REAL.items()) + "ENKASH_PASSWORD=\n")
    with pytest.raises(SettingsError, match="ENKASH_PASSWORD"):
        Settings.from_env({}, dotenv_path=dotenv)
    with pytest.raises(SettingsError, match="ENKASH_CLIENT_SECRET"):
        Settings(base_url="https://api.enkash.example", client_id="c", username="u", password="p")


def test_a_ready_token_needs_no_credentials_and_gets_none_of_the_sandboxs(tmp_path: Path) -> None:
    env = {"ENKASH_BASE_URL": REAL["ENKASH_BASE_URL"], "ENKASH_ACCESS_TOKEN": "tok-123"}
    settings = Settings.from_env(env, dotenv_path=tmp_path / "none")
    assert settings.access_token == "tok-123"
    assert (settings.client_id, settings.client_secret, settings.password) == ("", "", "")


def test_the_sandbox_still_gets_its_own_credentials_when_none_are_given(tmp_path: Path) -> None:
    settings = Settings.from_env({"ENKASH_USERNAME": "me@x.example"}, dotenv_path=tmp_path / "n")
    assert settings.uses_sandbox
    assert settings.client_secret == SANDBOX_CREDENTIALS["client_secret"]
    assert settings.username == "me@x.example"


class _CountingServer:
    """A real HTTP server on loopback that answers 404 to everything and counts the requests."""

    def __init__(self) -> None:
        counter = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                counter.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counting_server() -> Iterator[_CountingServer]:
    server = _CountingServer()
    try:
        yield server
    finally:
        server.close()


def test_no_request_reaches_the_server_when_the_password_is_missing(
    counting_server: _CountingServer, tmp_path: Path
) -> None:
    env = {**REAL, "ENKASH_BASE_URL": counting_server.url, "COINS_HOME": str(tmp_path / "h")}
    del env["ENKASH_PASSWORD"]
    outcome = run_coins("balance", "EKU1", env=env, cwd=tmp_path)
    assert outcome.code == 2
    assert "ENKASH_PASSWORD" in outcome.err and "Traceback" not in outcome.err
    assert counting_server.requests == []
    # The library's own entry point refuses the same way, before any connection.
    with pytest.raises(SettingsError, match="ENKASH_PASSWORD"):
        CoinsClient.from_settings(Settings.from_env(env, dotenv_path=tmp_path / "none"))
    assert counting_server.requests == []
    # With every credential given, the same command does log in there (the counter works).
    env["ENKASH_PASSWORD"] = "real-password"
    assert run_coins("balance", "EKU1", env=env, cwd=tmp_path).code == 2
    assert any(r.startswith("POST") for r in counting_server.requests)


# -- limits --------------------------------------------------------------------------------


def test_limits_default_to_a_million_row_sheet_and_are_settable(tmp_path: Path) -> None:
    assert Settings.from_env({}, dotenv_path=tmp_path / "none").limits == Limits()
    assert Limits().max_rows >= 1_000_000
    env = {
        "COINS_MAX_ROWS": "5,000,000",
        "COINS_MAX_FILE_MB": "400",
        "COINS_MAX_COLUMNS": "2000",
        "COINS_MAX_CELL_CHARS": "100000",
        "COINS_MAX_XLSX_PART_MB": "2048",
        "COINS_MAX_XLSX_RATIO": "250",
    }
    limits = Settings.from_env(env, dotenv_path=tmp_path / "none").limits
    assert (limits.max_rows, limits.max_file_mb, limits.max_columns) == (5_000_000, 400, 2000)
    assert (limits.max_cell_chars, limits.max_xlsx_part_mb, limits.max_xlsx_ratio) == (
        100_000,
        2048,
        250,
    )
    dotenv = tmp_path / ".env"
    dotenv.write_text("COINS_MAX_ROWS=10\n")
    assert Limits.from_env({}, dotenv_path=dotenv).max_rows == 10


@pytest.mark.parametrize("value", ["many", "0", "-5", "1.5", "inf"])
def test_a_bad_limit_is_refused_with_the_variable_named(value: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="COINS_MAX_ROWS"):
        Limits.from_env({"COINS_MAX_ROWS": value}, dotenv_path=tmp_path / "none")


# -- the .env file holds secrets -----------------------------------------------------------


def test_a_dotenv_readable_by_others_is_warned_about_once(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("ENKASH_PASSWORD=x\n")
    dotenv.chmod(0o644)
    warning = check_dotenv_permissions(dotenv)
    assert warning is not None and "chmod 600" in warning and str(dotenv) in warning
    assert check_dotenv_permissions(dotenv) is None  # once per process
    assert check_dotenv_permissions(dotenv, once=False) == warning
    dotenv.chmod(0o600)
    assert check_dotenv_permissions(dotenv, once=False) is None
    assert check_dotenv_permissions(tmp_path / "absent.env", once=False) is None


def test_the_cli_warns_about_a_readable_dotenv_on_stderr(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COINS_ACTOR=someone\n")
    (tmp_path / ".env").chmod(0o640)
    outcome = run_coins("configs", env={"COINS_HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert outcome.code == 0, outcome.err
    assert outcome.err.count("chmod 600") == 1
    (tmp_path / ".env").chmod(0o600)
    quiet = run_coins("configs", env={"COINS_HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert "chmod" not in quiet.err


def test_the_app_warns_about_a_readable_dotenv_on_every_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from test_app_support import open_page, point_app_at, texts

    point_app_at(monkeypatch, tmp_path)  # the embedded sandbox; the working directory is tmp_path
    (tmp_path / ".env").write_text("COINS_ACTOR=someone\n")
    (tmp_path / ".env").chmod(0o644)
    at = open_page("overview")
    assert any("chmod 600" in text for text in texts(at, "warning")), texts(at, "warning")
    (tmp_path / ".env").chmod(0o600)
    at.run()
    assert not any("chmod 600" in text for text in texts(at, "warning"))


def test_the_app_names_the_missing_setting_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, counting_server: _CountingServer
) -> None:
    from test_app_support import open_page, point_app_at, texts

    point_app_at(monkeypatch, tmp_path)
    for name, value in {**REAL, "ENKASH_BASE_URL": counting_server.url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ENKASH_CLIENT_SECRET")
    at = open_page("overview")
    assert any("ENKASH_CLIENT_SECRET" in text for text in texts(at, "error")), texts(at, "error")
    assert counting_server.requests == []
