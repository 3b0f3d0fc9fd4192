from django.urls import path

from smtpplus.views import placeholder

app_name = "relay"
urlpatterns = [
    path("messages/", placeholder, name="messages"),
    path("events/", placeholder, name="events"),
]
