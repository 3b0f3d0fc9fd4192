from django.apps import AppConfig

from smtpplus import checks  # noqa: F401  (registers the deploy checks)


class SmtpPlusConfig(AppConfig):
    name = "smtpplus"
    verbose_name = "SMTP+"
