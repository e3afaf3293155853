"""Settings come from the environment over `.env`, and never show a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.settings import SANDBOX_CREDENTIALS, Settings


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
    env = {
        "ENKASH_BASE_URL": "https://enkash.example",
        "ENKASH_CLIENT_SECRET": "top-secret-client",
        "ENKASH_PASSWORD": "hunter2-password",
        "ENKASH_ACCESS_TOKEN": "tok-abcdef-123456",
        "ENKASH_COOKIE": "JSESSIONID=cookie-value",
    }
    settings = Settings.from_env(env, dotenv_path=tmp_path / "none")
    shown = repr(settings) + str(settings.describe())
    for secret in env.values():
        if secret.startswith("https://"):
            continue
        assert secret not in shown
    assert settings.describe()["password"].startswith("•")
