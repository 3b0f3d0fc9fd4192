from django.urls import path

from smtpplus.views import placeholder

app_name = "accounts"
urlpatterns = [
    path("users/", placeholder, name="smtpuser_list"),
    path("users/<int:pk>/", placeholder, name="smtpuser_detail"),
    path("audit/", placeholder, name="audit"),
    path("members/", placeholder, name="members"),
    path("switch-account/", placeholder, name="switch"),
]
