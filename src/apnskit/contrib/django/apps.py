"""The Django app: ``INSTALLED_APPS = [..., "apnskit.contrib.django"]``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class ApnskitConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Registers the system checks and resets the client when ``APNSKIT`` changes."""

    name = "apnskit.contrib.django"
    label = "apnskit"
    verbose_name = "apnskit (Apple Push Notification service)"

    def ready(self) -> None:
        """Register the checks (tag ``apnskit``) and the setting-change handler."""
        from apnskit.contrib.django import checks

        checks.register()
        setting_changed.connect(_setting_changed, dispatch_uid="apnskit.setting_changed")


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    # override_settings(APNSKIT=...) in tests: the next send uses the new settings.
    if setting == "APNSKIT":
        from apnskit.contrib.django._client import close_client

        close_client()
