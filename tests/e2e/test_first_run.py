"""The README's first run on a machine with nothing configured: serve, then simulate, as processes.

The embedded SQLite default with no channel secret is a development start: `serve` writes random
channel secrets to .env, so `simulate` run from the same directory signs with them, and its
summary ends with what the server stored, read back through the REST API.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.serve import KOBLIAT, clean_environment, serving

SECRETS = ("WHATSAPP_APP_SECRET", "TELEGRAM_SECRET_TOKEN", "TWILIO_AUTH_TOKEN")


def test_first_serve_writes_dev_secrets_and_simulate_shows_what_was_stored(tmp_path: Path) -> None:
    console = {"COLUMNS": "200", "NO_COLOR": "1"}
    with serving(tmp_path, console) as served:
        started = served.log.read_text()
        assert "development secrets were written to" in started
        dotenv = (tmp_path / ".env").read_text()
        for name in SECRETS:
            value = re.search(rf"^KOBLIAT_{name}=(.+)$", dotenv, re.M)
            assert value is not None and value.group(1) not in started  # never printed
        (key,) = [line for line in started.splitlines() if line.startswith("kbl_")]
        simulated = subprocess.run(
            [str(KOBLIAT), "simulate", "--url", served.base, "--duration", "2", "--rate", "30"],
            cwd=tmp_path,
            env={**clean_environment(), **console, "KOBLIAT_API_KEY": key},
            capture_output=True,
            text=True,
            timeout=120,
        )
    output = simulated.stdout + simulated.stderr
    assert simulated.returncode == 0, output
    assert "what the server stored" in output
    rows = {
        cells[0]: (int(cells[1]), int(cells[2]))
        for line in output.splitlines()
        if len(cells := re.findall(r"[\w.]+", line)) == 3 and cells[1].isdigit()
    }
    assert set(rows) >= {"whatsapp", "telegram", "sms", "generic"}, output
    assert all(conversations > 0 and messages > 0 for conversations, messages in rows.values())
    assert "customers by identity type" in output


def test_simulate_says_to_restart_serve_when_the_server_lacks_the_secrets(tmp_path: Path) -> None:
    from kobliat.simulate import Report, hints

    report = Report()
    report.answers[("telegram", "503")] += 3
    report.answers[("whatsapp", "401")] += 1
    said = " ".join(hints(report))
    assert "restart it" in said and "KOBLIAT_TELEGRAM_SECRET_TOKEN" in said
    assert "KOBLIAT_WHATSAPP_APP_SECRET" in said
