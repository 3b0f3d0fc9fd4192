"""Console forms of the accounts app: SMTP+ users, their senders, credential
re-authentication, members and invitations, and the audit log's filters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import authenticate, get_user_model, password_validation

from accounts.api.keys import parse_networks
from accounts.login import password_guess_brake
from accounts.models import Account, ApiKeyRole, AuditEvent, Membership, Role, SmtpUser

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


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.ADMIN)

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].strip().lower()
        if Membership.objects.filter(account=self.account, user__username__iexact=email).exists():
            raise forms.ValidationError(f"{email} is already a member of {self.account.name}.")
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class SetPasswordForm(forms.Form):
    """The password of a console user created from an invitation."""

    password1 = forms.CharField(
        label="Password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            try:
                # Validated against a not-yet-saved user so "too similar to the email" works.
                password_validation.validate_password(
                    p1, get_user_model()(username=self.email, email=self.email)
                )
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses the key, e.g. “Deploy pipeline”.")
    role = forms.ChoiceField(choices=ApiKeyRole.choices, initial=ApiKeyRole.READ_ONLY,
                             help_text="Read only keys cannot change anything.")
    expires_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, label="Expires after (days)",
        help_text="Leave empty for a key that does not expire.",
    )
    networks = forms.CharField(
        max_length=2000, required=False, label="Allowed client networks",
        help_text="CIDR networks or addresses, e.g. “10.0.0.0/8 192.0.2.7”; empty: any.",
    )

    smtp_user = forms.ModelChoiceField(
        queryset=SmtpUser.objects.none(), required=False, label="Sends as SMTP+ user",
        empty_label="— none: a management key —",
        help_text="A send key: it can only send messages (POST /api/v1/messages), as this "
        "SMTP+ user, with the relay's rules. Its role is not used.",
    )

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        users = self.fields["smtp_user"]
        assert isinstance(users, forms.ModelChoiceField)
        users.queryset = SmtpUser.objects.filter(account=account)
        users.label_from_instance = lambda user: f"{user} ({user.username})"  # type: ignore[assignment]

    def clean_networks(self) -> list[str]:
        try:
            return parse_networks(self.cleaned_data.get("networks") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False)
    actor = forms.CharField(required=False, max_length=300)
    target = forms.CharField(required=False, max_length=300)
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = (
            AuditEvent.objects.filter(account=account)
            .order_by("action")
            .values_list("action", flat=True)
            .distinct()
        )
        action_field = self.fields["action"]
        assert isinstance(action_field, forms.ChoiceField)
        action_field.choices = [("", "All actions")] + [(a, a) for a in actions]
