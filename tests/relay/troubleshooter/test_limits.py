"""The limit checks: the hourly limit and the message size, hit for real over SMTP."""

from __future__ import annotations

import pytest

from accounts.actions.smtp_users import update_smtp_user
from relay.troubleshooter.base import OK, PROBLEM
from relay.troubleshooter.limits import check_hourly_limit, check_size
from tests.relay.troubleshooter.helpers import (
    run,
    send,
    text,
)


# --- limits, size, upstream ----------------------------------------------------------------
def test_hitting_the_hourly_limit_is_a_problem_until_the_limit_is_raised(relay, cast):
    update_smtp_user(cast.acme_smtp, {"hourly_limit": 1})
    pw = cast.acme_smtp_password
    assert send(relay, cast.acme_smtp, pw, "shop@acme.test")[0] == 250
    assert send(relay, cast.acme_smtp, pw, "shop@acme.test")[0] == 451
    result = run(check_hourly_limit, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "Hourly limit: 1; messages accepted in the last hour: 1" in text(result)
    assert "Refused for the hourly limit: 1 time" in text(result)
    update_smtp_user(cast.acme_smtp, {"hourly_limit": 100})
    assert run(check_hourly_limit, relay, cast.acme_smtp).status == OK


@pytest.mark.parametrize("relay", [{"RELAY_MAX_MESSAGE_SIZE": 2000}], indirect=True)
def test_a_message_over_the_size_limit_is_reported(relay, cast):
    assert run(check_size, relay, cast.acme_smtp).status == OK
    code, _ = send(relay, cast.acme_smtp, cast.acme_smtp_password, "shop@acme.test", size=5000)
    assert code == 552
    result = run(check_size, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "Refused for size: 1 time" in text(result)
