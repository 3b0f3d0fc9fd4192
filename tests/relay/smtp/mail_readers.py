"""Independent readers of a message's author fields, to check that what the relay
accepts is read the same way after it.

- `python_authors`: the `email` package, whole message, with `policy.strict` (raises on
  any defect of the message) and `policy.default` (must agree, and report no defect);
- `node_authors`: Node.js's mailparser (its own header splitting, and nodemailer's
  address parser, as nodemailer, many webmail back ends and Node-based filters read
  mail). Installed with npm into `.venv/node` on first use; without Node.js and npm the
  tests fail, they do not skip.

Both return, per message, {lower-case field name: [addresses, …]} for the author fields
(From, Sender, Resent-From, Resent-Sender) the reader found.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import subprocess
from pathlib import Path

import pytest

from tests.node_packages import npm_package

AUTHOR_FIELDS = ("from", "sender", "resent-from", "resent-sender")
MAILPARSER = "mailparser@3.14.2"  # pinned: its nodemailer (address parser) comes with it
NODE_DIR = Path(__file__).resolve().parents[3] / ".venv" / "node"

_SCRIPT = r"""
const { simpleParser } = require('mailparser');
const addressparser = require('nodemailer/lib/addressparser');
const FIELDS = new Set(['from', 'sender', 'resent-from', 'resent-sender']);
const flat = (list) => {
  const out = [];
  for (const item of list || []) {
    if (item.group) out.push(...flat(item.group)); else out.push(item.address);
  }
  return out;
};
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const results = [];
  for (const b64 of JSON.parse(input)) {
    const mail = await simpleParser(Buffer.from(b64, 'base64'), {
      skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true,
    });
    const fields = {};
    for (const { key, line } of mail.headerLines) {
      if (!FIELDS.has(key)) continue;
      const value = line.slice(line.indexOf(':') + 1).replace(/\r?\n(?=[ \t])/g, '');
      fields[key] = (fields[key] || []).concat(flat(addressparser(value)));
    }
    // mailparser's own reading of From:/Sender: (what a Node mail reader shows).
    const shown = {};
    for (const key of ['from', 'sender']) {
      const value = mail.headers.get(key);
      if (value) shown[key] = flat(value.value);
    }
    results.push({ fields, shown });
  }
  process.stdout.write(JSON.stringify(results));
});
"""


def _node_ready() -> Path:
    node = npm_package(MAILPARSER, NODE_DIR, "These tests")
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True).stdout
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        pytest.fail(f"mailparser needs Node.js 20 or later, this is {version.strip()}")
    return node


def node_readings(raws: list[bytes]) -> list[dict[str, dict[str, list[str]]]]:
    """mailparser's readings of several messages (one Node process for all of them):
    per message {"fields": addresses per author field, "shown": its From:/Sender:}."""
    node = _node_ready()
    done = subprocess.run(
        [str(node), "-e", _SCRIPT],
        input=json.dumps([base64.b64encode(raw).decode() for raw in raws]),
        capture_output=True, text=True, timeout=120, cwd=NODE_DIR,
        env={"NODE_PATH": str(NODE_DIR / "node_modules"), "PATH": str(node.parent)},
    )
    if done.returncode != 0:
        pytest.fail(f"node could not read the messages:\n{done.stderr}")
    return json.loads(done.stdout)


def python_authors(raw: bytes) -> dict[str, list[str]]:
    """The author fields as the `email` package reads them; fails on any defect.

    UTF-8 headers (RFC 6532) are read as text: from bytes, the package reads only ASCII."""
    if raw.isascii():
        strict = email.message_from_bytes(raw, policy=email.policy.strict)  # raises on defects
        lenient = email.message_from_bytes(raw, policy=email.policy.default)
    else:
        text = raw.decode("utf-8")
        strict = email.message_from_string(text, policy=email.policy.strict.clone(utf8=True))
        lenient = email.message_from_string(text, policy=email.policy.default.clone(utf8=True))
    assert not lenient.defects, lenient.defects
    found: dict[str, list[str]] = {}
    for message in (strict, lenient):
        reading: dict[str, list[str]] = {}
        for name in AUTHOR_FIELDS:
            for header in message.get_all(name) or []:
                assert not header.defects, (name, str(header), header.defects)
                reading.setdefault(name, []).extend(a.addr_spec for a in header.addresses)
        assert not found or reading == found, (found, reading)
        found = reading
    return found
