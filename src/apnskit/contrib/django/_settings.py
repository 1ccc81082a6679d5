"""Reading and checking ``settings.APNSKIT``: one validator for the client and the checks.

The client (``get_client()``) takes the first error as an ``ImproperlyConfigured``; the system
checks (``manage.py check``) report every problem at once. Both go through :func:`inspect`,
so what the check accepts the client accepts too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import apnskit

__all__ = ["ApnskitSettings", "Problem", "inspect"]

# Each key of settings.APNSKIT, and what it is for (the hint of an unknown-key error).
KNOWN_KEYS: dict[str, str] = {
    "KEY_FILE": "token authentication: the .p8 signing key file",
    "KEY_ID": "token authentication: the key ID (default: from the AuthKey_<KEYID>.p8 name)",
    "TEAM_ID": "token authentication: the 10-character team ID",
    "CERT_FILE": "certificate authentication: a .p12 or PEM file",
    "CERT_KEY_FILE": "certificate authentication: the PEM private key, if not in CERT_FILE",
    "CERT_PASSWORD": "certificate authentication: the password of the .p12 or PEM key",
    "ENVIRONMENT": "'production' or 'sandbox'",
    "TOPIC": "the default apns-topic (your bundle ID) of send()",
    "HOST": "another APNs host (the mock server, a relay)",
    "PORT": "another port",
    "CA_FILE": "an extra trust anchor (PEM)",
    "TIMEOUT": "an apnskit.Timeout, or a dict of its fields",
    "LIMITS": "an apnskit.Limits, or a dict of its fields",
    "RETRY": "an apnskit.RetryPolicy, or a dict of its fields",
    "EVENT_HOOK": "a client event hook: a callable or its dotted path",
    "OPENTELEMETRY": "True, or a dict of OpenTelemetryHook arguments (apnskit[otel])",
    "CERT_EXPIRY_WARNING_DAYS": "warn this many days before the certificate expires (30)",
}

DEFAULT_CERT_EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class Problem:
    """One thing wrong with ``settings.APNSKIT``.

    Attributes:
        id: The check id without prefix (``"E004"``); the check reports ``apnskit.E004``.
        serious: An error (True) or a warning (False).
        message: What is wrong, naming the setting; never a secret.
        hint: How to fix it.
    """

    id: str
    serious: bool
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class ApnskitSettings:
    """``settings.APNSKIT``, validated, with the credentials loaded.

    Attributes:
        credentials: Token or certificate credentials.
        topic: The default topic of ``send()``, or None.
        client_options: Keyword arguments of :class:`apnskit.PushClient` besides credentials.
    """

    credentials: apnskit.TokenCredentials | apnskit.CertificateCredentials
    topic: str | None
    client_options: Mapping[str, Any] = field(default_factory=dict)


def inspect(
    raw: object, *, now: datetime | None = None
) -> tuple[ApnskitSettings | None, list[Problem]]:
    """Validate ``raw`` (the value of ``settings.APNSKIT``).

    Args:
        raw: The setting's value (a dict), or None when it is not set.
        now: The time certificate expiry is judged at (default: now).

    Returns:
        The settings (None when any problem is serious) and every problem found.
    """
    if raw is None or not isinstance(raw, Mapping):
        return None, [_not_set(raw)]
    problems = [
        Problem(
            "E002",
            True,
            f"settings.APNSKIT[{key!r}] is not an apnskit setting",
            "Known settings: " + ", ".join(sorted(KNOWN_KEYS)),
        )
        for key in raw
        if key not in KNOWN_KEYS
    ]
    options: dict[str, Any] = {}
    credentials = _credentials(raw, problems)
    _environment(raw, options, problems)
    topic = raw.get("TOPIC")
    if topic is not None and (not isinstance(topic, str) or not topic):
        problems.append(_bad("TOPIC", "must be a bundle ID string such as 'com.example.app'"))
    _connection_options(raw, options, problems)
    days = raw.get("CERT_EXPIRY_WARNING_DAYS", DEFAULT_CERT_EXPIRY_WARNING_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        problems.append(_bad("CERT_EXPIRY_WARNING_DAYS", f"{days!r} is not a number of days >= 0"))
        days = DEFAULT_CERT_EXPIRY_WARNING_DAYS
    if isinstance(credentials, apnskit.CertificateCredentials):
        _check_certificate(credentials, options.get("environment"), days, now, problems)
    if credentials is None or any(p.serious for p in problems):
        return None, problems
    return ApnskitSettings(credentials, topic, options), problems


def _not_set(raw: object) -> Problem:
    if raw is None:
        return Problem(
            "E001",
            True,
            "settings.APNSKIT is not set",
            "Set APNSKIT = {'KEY_FILE': ..., 'KEY_ID': ..., 'TEAM_ID': ..., "
            "'ENVIRONMENT': ...} (token) or {'CERT_FILE': ...} (certificate).",
        )
    return Problem("E001", True, f"settings.APNSKIT must be a dict, not {type(raw).__name__}")


def _environment(raw: Mapping[str, Any], options: dict[str, Any], problems: list[Problem]) -> None:
    environment = raw.get("ENVIRONMENT")
    if environment is not None:
        try:
            options["environment"] = apnskit.Environment.parse(environment)
        except apnskit.ConfigurationError:
            problems.append(
                _bad("ENVIRONMENT", f"{environment!r} is not 'production' or 'sandbox'")
            )
    elif "KEY_FILE" in raw and raw.get("HOST") is None:
        problems.append(
            _bad(
                "ENVIRONMENT",
                "is required with token authentication: a signing key does not say whether the "
                "app's device tokens are production or sandbox ones",
            )
        )


def _connection_options(
    raw: Mapping[str, Any], options: dict[str, Any], problems: list[Problem]
) -> None:
    """HOST, PORT, CA_FILE, TIMEOUT, LIMITS, RETRY and the event hooks, into ``options``."""
    host = raw.get("HOST")
    if host is not None:
        if not isinstance(host, str) or not host:
            problems.append(_bad("HOST", "must be a host name or address string"))
        else:
            options["host"] = host
    port = raw.get("PORT")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            problems.append(_bad("PORT", f"{port!r} is not a port number (1-65535)"))
        else:
            options["port"] = port
    ca_file = raw.get("CA_FILE")
    if ca_file is not None and _existing_file("CA_FILE", ca_file, problems):
        options["ca_file"] = os.fspath(ca_file)
    for key, kind, argument in (
        ("TIMEOUT", apnskit.Timeout, "timeout"),
        ("LIMITS", apnskit.Limits, "limits"),
        ("RETRY", apnskit.RetryPolicy, "retry"),
    ):
        value = _config_object(raw, key, kind, problems)
        if value is not None:
            options[argument] = value
    hook = _event_hook(raw, problems)
    if hook is not None:
        options["event_hook"] = hook


def _bad(key: str, rule: str) -> Problem:
    return Problem("E006", True, f"settings.APNSKIT[{key!r}] {rule}")


def _existing_file(key: str, path: object, problems: list[Problem]) -> bool:
    if not isinstance(path, (str, os.PathLike)):
        problems.append(_bad(key, f"must be a file path, not {type(path).__name__}"))
        return False
    if not os.path.isfile(path):
        problems.append(
            Problem(
                "E004",
                True,
                f"settings.APNSKIT[{key!r}]: {os.fspath(path)} does not exist or is not a file",
                "Check the path (relative paths are relative to the working directory).",
            )
        )
        return False
    return True


def _credentials(
    raw: Mapping[str, Any], problems: list[Problem]
) -> apnskit.TokenCredentials | apnskit.CertificateCredentials | None:
    token = raw.get("KEY_FILE") is not None
    certificate = raw.get("CERT_FILE") is not None
    if token == certificate:
        problems.append(
            Problem(
                "E003",
                True,
                "settings.APNSKIT needs exactly one of KEY_FILE (token authentication) and "
                "CERT_FILE (certificate authentication)" + (", not both" if token else ""),
            )
        )
        return None
    if token:
        team_id = raw.get("TEAM_ID")
        if not isinstance(team_id, str) or not team_id:
            problems.append(_bad("TEAM_ID", "is required with KEY_FILE: your 10-character team ID"))
            return None
        if not _existing_file("KEY_FILE", raw["KEY_FILE"], problems):
            return None
        try:
            return apnskit.TokenCredentials.from_file(
                raw["KEY_FILE"], team_id=team_id, key_id=raw.get("KEY_ID")
            )
        except apnskit.CredentialsError as error:
            problems.append(_unusable("KEY_FILE", error))
            return None
    key_file = raw.get("CERT_KEY_FILE")
    if not _existing_file("CERT_FILE", raw["CERT_FILE"], problems):
        return None
    if key_file is not None and not _existing_file("CERT_KEY_FILE", key_file, problems):
        return None
    try:
        return apnskit.CertificateCredentials.from_file(
            raw["CERT_FILE"], key_file=key_file, password=raw.get("CERT_PASSWORD")
        )
    except apnskit.CredentialsError as error:
        problems.append(_unusable("CERT_FILE", error))
        return None


def _unusable(key: str, error: apnskit.CredentialsError) -> Problem:
    # CredentialsError messages name files and rules, never key material or passwords.
    return Problem("E005", True, f"settings.APNSKIT[{key!r}] cannot be used: {error}")


def _check_certificate(
    credentials: apnskit.CertificateCredentials,
    environment: apnskit.Environment | None,
    days: int,
    now: datetime | None,
    problems: list[Problem],
) -> None:
    now = now or datetime.now(timezone.utc)
    expires = credentials.not_valid_after
    left = expires - now
    if left <= timedelta(days=days):
        problems.append(
            Problem(
                "W001",
                False,
                f"settings.APNSKIT['CERT_FILE']: the APNs certificate"
                f"{f' for {credentials.subject_uid!r}' if credentials.subject_uid else ''} "
                f"expires on {expires:%Y-%m-%d %H:%M} UTC, in {max(left.days, 0)} days",
                "Make a new certificate in the Apple Developer account and deploy it before "
                "then (or move to token authentication, which does not expire).",
            )
        )
    if environment is not None:
        try:
            credentials.resolve_environment(environment)
        except apnskit.ApnsError as error:
            problems.append(_bad("ENVIRONMENT", f"does not match the certificate: {error}"))


def _config_object(
    raw: Mapping[str, Any], key: str, kind: type[Any], problems: list[Problem]
) -> Any:
    value = raw.get(key)
    if value is None or isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        problems.append(_bad(key, f"must be an apnskit.{kind.__name__} or a dict of its fields"))
        return None
    try:
        return kind(**value)
    except (TypeError, apnskit.ConfigurationError) as error:
        problems.append(_bad(key, f"is not a valid apnskit.{kind.__name__}: {error}"))
        return None


def _event_hook(
    raw: Mapping[str, Any], problems: list[Problem]
) -> Callable[[apnskit.ClientEvent], None] | None:
    hooks: list[Callable[[apnskit.ClientEvent], None]] = []
    hook = raw.get("EVENT_HOOK")
    if isinstance(hook, str):
        from django.utils.module_loading import import_string

        try:
            hook = import_string(hook)
        except ImportError as error:
            problems.append(_bad("EVENT_HOOK", f"cannot be imported: {error}"))
            hook = None
    if hook is not None:
        if callable(hook):
            hooks.append(hook)
        else:
            problems.append(_bad("EVENT_HOOK", "must be callable (or the dotted path of one)"))
    otel = raw.get("OPENTELEMETRY")
    if otel:
        arguments = {} if otel is True else otel
        if not isinstance(arguments, Mapping):
            problems.append(_bad("OPENTELEMETRY", "must be True or a dict of hook arguments"))
        else:
            try:
                from apnskit.contrib.opentelemetry import OpenTelemetryHook

                hooks.append(OpenTelemetryHook(**arguments))
            except ImportError:
                problems.append(
                    _bad("OPENTELEMETRY", "needs OpenTelemetry: pip install 'apnskit[otel]'")
                )
            except (TypeError, ValueError) as error:
                problems.append(_bad("OPENTELEMETRY", f"has a bad argument: {error}"))
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]
    first, second = hooks

    def both(event: apnskit.ClientEvent) -> None:
        try:
            first(event)
        finally:
            second(event)

    return both
