"""In a real browser: the dashboard's relay panel lists every live node and the lost
ones as down, and still fits a phone's width."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from relay.models import RelayNode
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_relay_panel_shows_live_nodes_and_a_lost_one_as_down(page, cast):
    now = timezone.now()
    ports = [{"host": "0.0.0.0", "port": 587, "tls": "starttls"}]
    RelayNode.objects.create(node_id="edge-1", hostname="mx1", listeners=ports, version="0.1.0",
                             started=now - timedelta(hours=2), accepted_last_minute=4321)
    RelayNode.objects.create(node_id="edge-2", hostname="mx2", listeners=ports, version="0.1.0",
                             heartbeat=now - timedelta(minutes=4))
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, cast.alice.username, PASSWORD)
    page.goto("/")
    live = page.locator('tr.node[data-node="edge-1"]')
    text = live.inner_text().replace("\xa0", " ")
    assert "4321" in text and "2 hours" in text and "0.1.0" in text
    lost = page.locator('tr.node-down[data-node="edge-2"]')
    assert "down" in lost.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
