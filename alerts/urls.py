from django.urls import path

from alerts import views

app_name = "alerts"
urlpatterns = [
    path("", views.rule_list, name="rules"),
    path("new/", views.rule_form, name="rule_create"),
    path("<int:pk>/", views.rule_detail, name="rule_detail"),
    path("<int:pk>/edit/", views.rule_form, name="rule_edit"),
    path("<int:pk>/toggle/", views.rule_toggle, name="rule_toggle"),
    path("<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("<int:pk>/test/", views.rule_test, name="rule_test"),
    path("<int:pk>/secret/", views.rule_reset_secret, name="rule_reset_secret"),
    path("log/", views.notification_log, name="log"),
    path("log/<int:pk>/", views.notification_detail, name="notification_detail"),
]
