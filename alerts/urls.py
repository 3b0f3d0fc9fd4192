from django.urls import path

from smtpplus.views import placeholder

app_name = "alerts"
urlpatterns = [
    path("", placeholder, name="rules"),
]
