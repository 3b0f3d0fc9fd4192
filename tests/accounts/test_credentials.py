from accounts.actions.smtp_users import reset_password, set_active
from relay.smtp.login import log_in


def test_it_accepts_the_right_password(cast):
    result = log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result
    assert result.ok and result.smtp_user == cast.acme_smtp


def test_it_refuses_a_wrong_password_an_unknown_user_and_a_disabled_user(cast):
    assert log_in(cast.acme_smtp.username, "nope", None).result.reason == "wrong password"
    assert log_in("smtp-nobody", cast.acme_smtp_password, None).result.reason == "unknown user"
    set_active(cast.acme_smtp, False)
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.reason == "user disabled"


def test_the_password_is_stored_encrypted_and_retrievable(cast):
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp_password not in cast.acme_smtp.password_encrypted
    assert cast.acme_smtp.get_password() == cast.acme_smtp_password


def test_reset_password_invalidates_the_old_one_at_once(cast):
    new = reset_password(cast.acme_smtp)
    assert not log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert log_in(cast.acme_smtp.username, new, None).result.ok


def test_logins_keep_working_when_a_new_key_is_added_before_rotation(cast, settings):
    from cryptography.fernet import Fernet

    from accounts.credentials import credential_keys

    old = credential_keys()[0].decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [Fernet.generate_key().decode(), old]
    cast.acme_smtp.refresh_from_db()
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert cast.acme_smtp.get_password() == cast.acme_smtp_password
    assert not log_in(cast.acme_smtp.username, "wrong", None).result.ok
