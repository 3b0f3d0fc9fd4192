from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from accounts.models import Account, SmtpUser
from alerts.channels import webhook_host_problem
from alerts.content import CONTROL_CHARACTERS
from alerts.models import AlertRule, EventType, Frequency

MAX_EMAIL_RECIPIENTS = 20


def split_addresses(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,;]+", value or "") if part]


class SmtpUserChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: SmtpUser) -> str:
        return f"{obj.name} ({obj.username})" if obj.name else obj.username


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"size": 40}))
    enabled = forms.BooleanField(required=False, initial=True)
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one kind of event."},
    )
    delay_minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=60, label="Not delivered after (minutes)",
    )
    login_threshold = forms.IntegerField(
        min_value=1, max_value=100000, initial=10, label="Failed logins threshold",
    )
    login_window_minutes = forms.IntegerField(
        min_value=1, max_value=24 * 60, initial=10, label="Within (minutes)",
    )
    all_users = forms.TypedChoiceField(
        choices=[("1", "All SMTP+ users"), ("0", "Only the chosen SMTP+ users")],
        coerce=lambda v: v == "1", initial="1", widget=forms.RadioSelect, label="Scope",
    )
    smtp_users = SmtpUserChoices(
        queryset=SmtpUser.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple, label="Chosen SMTP+ users",
    )
    frequency = forms.ChoiceField(
        choices=Frequency.choices, initial=Frequency.AS_NEEDED, widget=forms.RadioSelect,
    )
    email_recipients = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Email recipients",
        help_text="One or more addresses, separated by commas, semicolons, spaces or lines.",
    )
    webhook_url = forms.CharField(
        required=False, max_length=2000, label="Webhook URL",
        help_text="Receives a JSON POST signed with X-SMTPPlus-Signature (HMAC-SHA256).",
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/smtpplus", "size": 60}),
    )

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        users = cast(SmtpUserChoices, self.fields["smtp_users"])
        users.queryset = SmtpUser.objects.filter(account=account)

    @classmethod
    def initial_for(cls, rule: AlertRule) -> dict[str, Any]:
        return {
            "name": rule.name, "enabled": rule.enabled, "events": list(rule.events),
            "delay_minutes": rule.delay_minutes, "login_threshold": rule.login_threshold,
            "login_window_minutes": rule.login_window_minutes,
            "all_users": "1" if rule.all_users else "0",
            "smtp_users": list(rule.smtp_users.all()), "frequency": rule.frequency,
            # Never the password a webhook URL may carry: the page shows it masked, and
            # the masked URL sent back unchanged keeps the stored one (rules.update_rule).
            "email_recipients": "\n".join(rule.email_list), "webhook_url": rule.webhook_display,
        }

    def clean_name(self) -> str:
        name = str(self.cleaned_data.get("name", ""))
        if CONTROL_CHARACTERS.search(name):
            raise ValidationError(
                "The name must be one line: line breaks, tabs and other control characters "
                "are not allowed."
            )
        return name

    def clean_email_recipients(self) -> str:
        addresses = split_addresses(self.cleaned_data.get("email_recipients", ""))
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            listed = ", ".join(f"“{a}”" for a in bad)
            word = "is not a valid email address" if len(bad) == 1 else "are not valid email addresses"
            raise ValidationError(f"{listed} {word}.")
        if len(addresses) > MAX_EMAIL_RECIPIENTS:
            raise ValidationError(f"At most {MAX_EMAIL_RECIPIENTS} email recipients.")
        seen: dict[str, str] = {}
        for a in addresses:
            seen.setdefault(a.lower(), a)
        return "\n".join(seen.values())

    def clean_webhook_url(self) -> str:
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if not url:
            return ""
        if not url.lower().startswith(("http://", "https://")):
            raise ValidationError("The webhook URL must start with http:// or https://.")
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ValidationError(f"“{url}” is not a valid URL.") from None
        if problem := webhook_host_problem(url):
            raise ValidationError(
                f"Alerts cannot be sent to this URL: {problem}. An operator who trusts every "
                "account with this machine's network can allow it with "
                "ALERTS_WEBHOOK_ALLOW_PRIVATE=true."
            )
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("email_recipients") and not data.get("webhook_url") and not self.has_error(
            "email_recipients"
        ) and not self.has_error("webhook_url"):
            raise ValidationError("Give at least one email recipient or a webhook URL.")
        if data.get("all_users") is False and not data.get("smtp_users"):
            self.add_error("smtp_users", "Choose at least one SMTP+ user, or apply the rule to all.")
        return data

    def rule_data(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "name": d["name"].strip(), "enabled": d["enabled"], "events": list(d["events"]),
            "delay_minutes": d["delay_minutes"], "login_threshold": d["login_threshold"],
            "login_window_minutes": d["login_window_minutes"],
            "all_users": d["all_users"], "frequency": d["frequency"],
            "email_recipients": d["email_recipients"], "webhook_url": d["webhook_url"],
        }
