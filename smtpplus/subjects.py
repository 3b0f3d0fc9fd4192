from smtpplus.views import placeholder as subject_tool  # noqa: F401
