"""Forms of the members pages and of accepting an invitation."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation

from accounts.models import Account, Membership, Role


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
