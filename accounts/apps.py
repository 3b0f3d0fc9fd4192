from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        # The checks every check of a sending domain runs after its ownership token, in
        # this order (accounts.domains.ownership.CHECKS). Imported here, not at the top: they import
        # the models, which are not loaded when this module is.
        from accounts.actions import dkim_keys
        from accounts.domains import health
        from accounts.domains.ownership import register_check

        register_check(dkim_keys.domain_check)
        register_check(health.spf_findings)
        register_check(health.dmarc_findings)
