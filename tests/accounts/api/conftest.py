"""The accounts API's tests use the API helpers of tests/api: a key of each of the cast's
accounts and a client that sends it."""

from tests.api.conftest import acme_api, acme_reader, globex_api  # noqa: F401
