"""Every channel in the registry is wired whole: a webhook route, simulate samples and a signer."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from kobliat.api import create_app
from kobliat.channels.registry import CHANNELS, Channel
from kobliat.settings import Settings
from kobliat.simulate import Signer
from kobliat.simulate_payloads import Ids, Sender, build, samples

BASE = "http://127.0.0.1:8000"


def test_every_webhook_post_route_is_a_registry_channel() -> None:
    posts = {
        path: methods["post"]["operationId"]
        for path, methods in create_app().openapi()["paths"].items()
        if path.startswith("/webhooks/") and "post" in methods
    }
    assert posts == {f"/webhooks/{name}": f"{name}Webhook" for name in CHANNELS}


@pytest.mark.parametrize("channel", list(CHANNELS.values()), ids=list(CHANNELS))
def test_simulate_signs_every_sample_of_every_channel_so_it_verifies(channel: Channel) -> None:
    assert channel.secret_setting in Settings.model_fields
    assert channel.secret_env in channel.secrets  # dev-secrets makes the verification secret
    secret = channel.secrets[channel.secret_env]()
    settings = Settings(_env_file=None, **{channel.secret_setting: secret})  # type: ignore[call-arg]
    signer = Signer(settings, BASE)
    names = [name for c, name in samples() if c == channel.name]
    assert names, f"simulate has no sample for {channel.name}"
    url = f"{BASE}/webhooks/{channel.name}"
    for name in names:
        body = build(channel.name, name, Sender(1), Ids())
        request = signer.request(channel.name, name, body)
        assert request.path == f"/webhooks/{channel.name}"
        headers = Headers(request.headers)
        assert channel.signature_header in headers
        assert channel.verify(body, headers, url, secret), name
        other = channel.secrets[channel.secret_env]()
        assert not channel.verify(body, headers, url, other), name


def test_only_twilio_signs_the_url_it_called() -> None:
    # The webhook route spells the URL out only for channels whose signature covers it.
    assert {c.name for c in CHANNELS.values() if c.signs_url} == {"twilio"}
