from django.apps import AppConfig


class DmbSessionsConfig(AppConfig):
    name = "loadtests.ops.dmb_sessions"
    label = "dmb_sessions"
    default_auto_field = "django.db.models.AutoField"
