"""The relay's console forms: the filters of the messages log and the events page, and
the troubleshooter's test message."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django import forms

from accounts.models import Account, SmtpUser
from relay.listen import Endpoint
from relay.models import EventKind, RecipientStatus

# The dates a filter may name: a day at either end of what `datetime` can hold would
# overflow once turned into the bounds of a query (the day after, the time zone's offset).
FIRST_DAY = date(1970, 1, 1)  # the date of the keyset EPOCH in relay.console.filters
LAST_DAY = date(9999, 12, 30)


class SmtpUserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: SmtpUser) -> str:
        return f"{obj.name} ({obj.username})" if obj.name else obj.username


class DayField(forms.DateField):
    """A date between FIRST_DAY and LAST_DAY; anything else is a form error."""

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and not FIRST_DAY <= value <= LAST_DAY:
            raise forms.ValidationError(
                "%(label)s: enter a date between %(first)s and %(last)s.", code="out_of_range",
                params={"label": self.label or "Date", "first": FIRST_DAY.isoformat(),
                        "last": LAST_DAY.isoformat()},
            )


class AccountFilterForm(forms.Form):
    """A filter form whose SMTP+ user choices are the given account's users only."""

    user = SmtpUserChoiceField(queryset=SmtpUser.objects.none(), required=False,
                               empty_label="All SMTP+ users", label="SMTP+ user")

    def __init__(self, data: Any, account: Account) -> None:
        super().__init__(data)
        users = cast(SmtpUserChoiceField, self.fields["user"])
        users.queryset = SmtpUser.objects.filter(account=account)


class MomentField(forms.DateTimeField):
    """A time (`YYYY-MM-DDTHH:MM`, the console's time zone) within FIRST_DAY…LAST_DAY."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and not FIRST_DAY <= value.date() <= LAST_DAY:
            raise forms.ValidationError(
                "%(label)s: enter a time between %(first)s and %(last)s.", code="out_of_range",
                params={"label": self.label or "Time", "first": FIRST_DAY.isoformat(),
                        "last": LAST_DAY.isoformat()},
            )


class TimeWindowForm(AccountFilterForm):
    """A period [since, until) the statistics' links name to the hour."""

    since = MomentField(required=False, label="From (time)")
    until = MomentField(required=False, label="Before (time)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("The period's start is not before its end.")
        return data


# What the period (since/until) of the messages log applies to: when the message was
# accepted, or when one of its recipients was delivered, deferred or failed.
PERIOD_EVENTS = [("", "acceptance"), ("delivered", "a delivery"), ("deferred", "a deferral"),
                 ("failed", "a failure")]


class MessageFilterForm(TimeWindowForm):
    status = forms.ChoiceField(choices=[("", "Any status"), *RecipientStatus.choices],
                               required=False, label="Recipient status")
    sender = forms.CharField(required=False, max_length=320, label="Sender")
    sender_match = forms.ChoiceField(choices=[("contains", "contains"), ("equals", "equals")],
                                     required=False, label="Sender match")
    recipient = forms.CharField(required=False, max_length=320, label="Recipient")
    domain = forms.CharField(required=False, max_length=255, label="Recipient domain")
    event = forms.ChoiceField(choices=PERIOD_EVENTS, required=False, label="Period of")
    kind = forms.ChoiceField(
        choices=[("", "All messages"), ("mail", "Mail from clients"),
                 ("dsn", "Delivery reports SMTP+ sent")],
        required=False, label="Kind")
    date_from = DayField(required=False, label="From date",
                         widget=forms.DateInput(attrs={"type": "date", "min": FIRST_DAY,
                                                       "max": LAST_DAY}))
    date_to = DayField(required=False, label="To date",
                       widget=forms.DateInput(attrs={"type": "date", "min": FIRST_DAY,
                                                     "max": LAST_DAY}))

    field_order = ["user", "status", "kind", "sender", "sender_match", "recipient", "domain",
                   "date_from", "date_to", "since", "until", "event"]

    def clean_domain(self) -> str:
        domain = self.cleaned_data.get("domain", "").strip().lower().rstrip(".")
        if domain and ("@" in domain or any(c.isspace() for c in domain)):
            raise forms.ValidationError("Recipient domain: enter a domain name such as "
                                        "example.com, without a user part or spaces.")
        return domain

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class EventFilterForm(TimeWindowForm):
    kind = forms.ChoiceField(choices=[("", "Any kind"), *EventKind.choices], required=False,
                             label="Kind")


class TestMessageForm(forms.Form):
    sender = forms.EmailField(label="Sender (From)", max_length=320)
    recipient = forms.EmailField(label="Recipient (To)", max_length=320)
    port = forms.TypedChoiceField(label="Relay port", coerce=int)

    def __init__(self, *args: Any, options: list[Endpoint], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = {e.port: e for e in options}
        port = cast(forms.TypedChoiceField, self.fields["port"])
        port.choices = [(e.port, e.label) for e in options]

    @property
    def endpoint(self) -> Endpoint:
        return self.options[self.cleaned_data["port"]]
