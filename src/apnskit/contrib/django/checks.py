"""System checks for ``settings.APNSKIT``, run by ``manage.py check``.

Django also runs them before ``runserver``, ``migrate`` and the test runner.

======================  ==================================================================
Id                      Problem
======================  ==================================================================
``apnskit.E001``        ``APNSKIT`` is not set, or not a dict
``apnskit.E002``        an unknown key (a typo)
``apnskit.E003``        neither or both of ``KEY_FILE`` and ``CERT_FILE``
``apnskit.E004``        a key, certificate or CA file that does not exist
``apnskit.E005``        a key or certificate that cannot be used: not a key, wrong
                        password, key and certificate do not match, certificate expired
``apnskit.E006``        a bad value (environment, port, timeouts, team id, event hook...)
``apnskit.W001``        the certificate expires within ``CERT_EXPIRY_WARNING_DAYS`` (30)
======================  ==================================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from apnskit.contrib.django._settings import inspect

__all__ = ["check_settings", "register"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The Django check function: every problem of ``settings.APNSKIT``.

    Args:
        app_configs: The apps being checked (all when None); Django passes it.
        **kwargs: Django's other check arguments (``databases``...).

    Returns:
        ``django.core.checks.Error`` and ``Warning`` messages.
    """
    _, problems = inspect(getattr(settings, "APNSKIT", None))
    messages: list[Any] = []
    for problem in problems:
        kind = checks.Error if problem.serious else checks.Warning
        messages.append(kind(problem.message, hint=problem.hint, id=f"apnskit.{problem.id}"))
    return messages


def register() -> None:
    """Register :func:`check_settings` with Django (tag ``apnskit``); done by the app."""
    checks.register(check_settings, "apnskit")
