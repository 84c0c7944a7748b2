"""Standard Webhooks signatures and the retry policy, without a database."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from kobliat.events import signing
from kobliat.events.delivery import RetryPolicy, matches


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = signing.new_secret()
    body = json.dumps({"id": "e1", "type": "conversation.opened"}).encode()
    headers = signing.headers(secret, msg_id="e1", timestamp=int(time.time()), body=body)
    assert Webhook(secret).verify(body, headers) == {"id": "e1", "type": "conversation.opened"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_signature_matches_the_specification_example() -> None:
    # The example in the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        signing.sign(secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_generated_secrets_hold_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize("secret", ["abc", "whsec_!!!", "whsec_" + base64.b64encode(b"x").decode()])
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(signing.InvalidSecret):
        signing.secret_key(secret)


def test_backoff_doubles_within_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=30, max_attempts=5)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16), (9, 30)]:
        delays = {policy.delay(attempts) for _ in range(50)}
        assert all(
            timedelta(seconds=ceiling / 2) <= d <= timedelta(seconds=ceiling) for d in delays
        )
        assert len(delays) > 1, "jittered"
    assert not policy.is_exhausted(4) and policy.is_exhausted(5)
    assert not RetryPolicy(base_seconds=1, max_seconds=1, max_attempts=None).is_exhausted(10**6)


def test_event_type_patterns() -> None:
    assert matches("conversation.opened", "conversation.opened")
    assert matches("conversation.*", "conversation.participant.added")
    assert not matches("conversation.*", "customer.created")
    assert matches("*", "message.status.updated")
    assert not matches("message", "message.inbound.created")
