from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import login
from relay.console import dashboard, subjects
from smtpplus import views

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("login/", login.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("no-account/", views.no_account, name="no_account"),
    path("healthz", views.healthz, name="healthz"),
    path("subject-tool/", subjects.subject_tool, name="subject_tool"),
    path("", include("accounts.urls")),
    path("", include("relay.urls")),
    path("alerts/", include("alerts.urls")),
    path("admin/", admin.site.urls),
]

handler500 = "smtpplus.errors.server_error"
