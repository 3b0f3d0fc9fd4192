"""API test helpers: keys of the cast's accounts and a client that sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.actions.api_keys import create_api_key
from accounts.models import Account, ApiKeyRole


class ApiClient:
    """Django's test client with `Authorization: Bearer <key>` and JSON bodies."""

    def __init__(self, key: str | None, remote_addr: str = "127.0.0.1") -> None:
        self.client = Client(REMOTE_ADDR=remote_addr)
        self.key = key

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        url = f"/api/v1{path}"
        send = getattr(self.client, method)
        if method == "get":
            return send(url, params, headers=self._headers())
        data = json.dumps(body) if body is not None else None
        return send(url, data, content_type="application/json", headers=self._headers())

    def get(self, path: str, **params: Any) -> Any:
        return self.call("get", path, **params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("post", path, body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.call("patch", path, body)

    def delete(self, path: str) -> Any:
        return self.call("delete", path)


def key_for(account: Account, role: str = ApiKeyRole.ADMIN, **fields: Any) -> str:
    _, raw = create_api_key(account, name=fields.pop("name", f"{account.slug} {role} key"),
                            role=role, **fields)
    return raw


@pytest.fixture
def acme_api(cast) -> ApiClient:
    """An admin key of Acme (named "acme admin key")."""
    return ApiClient(key_for(cast.acme))


@pytest.fixture
def acme_reader(cast) -> ApiClient:
    return ApiClient(key_for(cast.acme, ApiKeyRole.READ_ONLY))


@pytest.fixture
def globex_api(cast) -> ApiClient:
    """charlie's account's admin key: it must see nothing of Acme's."""
    return ApiClient(key_for(cast.globex))
