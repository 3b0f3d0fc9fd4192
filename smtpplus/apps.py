from django.apps import AppConfig


class SmtpPlusConfig(AppConfig):
    name = "smtpplus"
    verbose_name = "SMTP+"

    def ready(self) -> None:
        from smtpplus import checks  # noqa: F401  (registers the deploy checks)
