from accounts.credentials import check_credentials
from accounts.services import reset_password, set_active


def test_it_accepts_the_right_password(cast):
    result = check_credentials(cast.acme_smtp.username, cast.acme_smtp_password)
    assert result.ok and result.smtp_user == cast.acme_smtp


def test_it_refuses_a_wrong_password_an_unknown_user_and_a_disabled_user(cast):
    assert check_credentials(cast.acme_smtp.username, "nope").reason == "wrong password"
    assert check_credentials("smtp-nobody", cast.acme_smtp_password).reason == "unknown user"
    set_active(cast.acme_smtp, False)
    assert check_credentials(cast.acme_smtp.username, cast.acme_smtp_password).reason == "user disabled"


def test_the_password_is_stored_encrypted_and_retrievable(cast):
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp_password not in cast.acme_smtp.password_encrypted
    assert cast.acme_smtp.get_password() == cast.acme_smtp_password


def test_reset_password_invalidates_the_old_one_at_once(cast):
    new = reset_password(cast.acme_smtp)
    assert not check_credentials(cast.acme_smtp.username, cast.acme_smtp_password).ok
    assert check_credentials(cast.acme_smtp.username, new).ok


def test_logins_keep_working_when_a_new_key_is_added_before_rotation(cast, settings):
    from cryptography.fernet import Fernet

    from accounts.credentials import credential_keys

    old = credential_keys()[0].decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [Fernet.generate_key().decode(), old]
    cast.acme_smtp.refresh_from_db()
    assert check_credentials(cast.acme_smtp.username, cast.acme_smtp_password).ok
    assert cast.acme_smtp.get_password() == cast.acme_smtp_password
    assert not check_credentials(cast.acme_smtp.username, "wrong").ok
