"""The send API: applications send over HTTP with exactly the relay's rules.

`api` holds the endpoints, `auth` who may send (send keys, HTTP Basic with the SMTP+
user's credentials), `compose` turns JSON into a message, `submit` judges it with the
relay's checks and queues it with the relay's storage, `idempotency` makes a retried
request return its first answer, `errors` and `events` give the relay's replies and
records of a refusal.
"""
