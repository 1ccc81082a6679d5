"""Django integration (``pip install apnskit[django]``): settings, one client, system checks.

Add ``"apnskit.contrib.django"`` to ``INSTALLED_APPS`` and configure ``settings.APNSKIT``::

    APNSKIT = {
        "KEY_FILE": BASE_DIR / "AuthKey_ABC123DEFG.p8",  # key id taken from the name
        "TEAM_ID": "DEF123GHIJ",
        "ENVIRONMENT": "production",
        "TOPIC": "com.example.app",                       # default topic of send()
    }

Then send from any view, task or command; the process-wide :class:`apnskit.PushClient` is
created on first use (in each worker process, after any fork) and closed at exit::

    from apnskit.contrib.django import send

    result = send(device.token, {"aps": {"alert": "Your order shipped"}})

``manage.py check`` reports a missing key or certificate file, an unusable key, a bad setting
and a certificate close to expiry (ids ``apnskit.E001`` to ``apnskit.E006``, ``apnskit.W001``).
"""

from apnskit.contrib.django._client import (
    asend,
    close_client,
    get_client,
    get_settings,
    send,
    send_many,
)
from apnskit.contrib.django._settings import ApnskitSettings

__all__ = [
    "ApnskitSettings",
    "asend",
    "close_client",
    "get_client",
    "get_settings",
    "send",
    "send_many",
]
