"""Starting the app beyond loopback without sign-in is refused before anything listens, with
one line (`python -m toolkit.ui.serve`, what `make run` should call)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args",
    [
        ["--server.address", "0.0.0.0"],
        ["--server.address=192.168.1.20"],
        ["--server.address", ""],
    ],
)
def test_serve_refuses_an_exposed_address_without_sign_in(args, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.ui.serve", *args, "--server.port", "1"],
        cwd=ROOT,  # the shipped .streamlit/config.toml, and no secrets file
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Refusing to serve the coins app"), lines
    assert "[auth]" in lines[0]


def test_serve_refuses_sign_in_without_a_host_list(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        'redirect_uri = "https://coins.corp.example/oauth2callback"\n'
        'cookie_secret = "x" \n'
        'client_id = "c"\nclient_secret = "s"\n'
        'server_metadata_url = "https://id.corp.example/.well-known/openid-configuration"\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit.ui.serve",
            "--server.address",
            "0.0.0.0",
            "--server.allowedHosts",
            "*",
            "--secrets.files",
            str(secrets),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "for any host name" in done.stderr
