"""Console forms for SMTP+ users, their senders and credential re-authentication."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import authenticate

from accounts.login import password_guess_brake

if TYPE_CHECKING:
    from accounts.tenancy import AccountRequest

PRIORITY_CHOICES = [
    (1, "1 — highest"),
    (2, "2"),
    (3, "3 — normal"),
    (4, "4"),
    (5, "5 — lowest"),
]


class SmtpUserForm(forms.Form):
    name = forms.CharField(
        max_length=200, required=False,
        help_text="What sends with these credentials, e.g. “Web shop” or “CRM”.",
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    priority = forms.TypedChoiceField(
        choices=PRIORITY_CHOICES, coerce=int, initial=3,
        help_text="Queue order: messages of priority 1 are delivered first.",
    )
    hourly_limit = forms.IntegerField(
        min_value=1, max_value=10_000_000, required=False,
        help_text="Messages per hour; leave empty for no limit.",
    )


class SmtpUserEditForm(SmtpUserForm):
    active = forms.BooleanField(
        required=False, help_text="A disabled user cannot log in to the relay."
    )


class SendersForm(forms.Form):
    domains = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "example.com; shop.example.com"}),
        required=False,
        help_text="Separate entries with ; , spaces or new lines.",
    )
    emails = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "news@example.com"}),
        required=False,
        help_text="Separate entries with ; , spaces or new lines. A pasted "
                  "“Name <news@example.com>” authorizes the address.",
    )
    include_subdomains = forms.BooleanField(
        required=False, label="Include subdomains of the domains added"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("domains", "").strip() or data.get("emails", "").strip()):
            raise forms.ValidationError("Enter at least one domain or email address.")
        return data


class SendAsForm(forms.Form):
    address = forms.CharField(
        max_length=400, label="Can this user send as …?",
        widget=forms.TextInput(attrs={"placeholder": "sender@example.com"}),
    )


class ConfirmPasswordForm(forms.Form):
    password = forms.CharField(
        label="Your console password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, request: AccountRequest, *args: Any, **kwargs: Any) -> None:
        self.request = request
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        user = self.request.user
        with password_guess_brake(self.request, user.get_username()):
            checked = authenticate(self.request, username=user.get_username(), password=password)
            if checked is None or checked.pk != user.pk:
                raise forms.ValidationError("That is not your password.")
        return password
