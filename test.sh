#!/usr/bin/env bash
# Install the test dependencies (into .venv, plus Debian's chromium for the browser
# tests, Node.js for the header tests, Knot DNS and Mail::DKIM for the sending-domain
# tests, Postfix and PgBouncer) and run the whole test suite. Set
# DATABASE_URL=postgres://... to run it on PostgreSQL instead of SQLite. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-test-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2
  fi
fi
# The sending-domain tests serve their zones with Knot DNS, and check DKIM signatures with
# Perl's Mail::DKIM (an implementation independent of ours).
if ! command -v knotd >/dev/null && [ ! -x /usr/sbin/knotd ] || ! perl -MMail::DKIM::Verifier -e1 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq knot libmail-dkim-perl >/dev/null
  else
    echo "DNS and DKIM tests need Knot DNS and Mail::DKIM: sudo apt-get install knot libmail-dkim-perl" >&2
  fi
fi
# One relay test runs a real Postfix that relays through SMTP+ as a client (SASL PLAIN
# needs libsasl2-modules).
if [ ! -x /usr/sbin/postfix ] || ! ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix libsasl2-modules >/dev/null
  else
    echo "The Postfix client test needs Postfix: sudo apt-get install postfix libsasl2-modules" >&2
  fi
fi
# The scale-out tests run the relay, the delivery worker and the console through
# PgBouncer in transaction mode.
if [ ! -x /usr/sbin/pgbouncer ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  else
    echo "The PgBouncer tests need PgBouncer: sudo apt-get install pgbouncer" >&2
  fi
fi
# The header tests read messages with Node.js's mailparser too (npm installs it into
# .venv/node on first use; it needs Node.js 20 or later).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "Header tests need Node.js 20+ and npm: sudo apt-get install nodejs npm" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
