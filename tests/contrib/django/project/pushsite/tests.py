"""apnskit.contrib.django in a real Django project, run by Django's test runner
(``manage.py test``; pytest runs that in ../test_django_project.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

import apnskit
from apnskit.contrib import django as apns_django
from apnskit.contrib.django import _client
from apnskit.testing import MockApnsServer
from pushsite import hooks

TOPIC = "com.example.app"
GOOD = "ab" * 32
GONE = "cd" * 32
PROJECT = Path(__file__).resolve().parent.parent


class MockServerTestCase(SimpleTestCase):
    """A mock APNs server trusting the project's signing key; APNSKIT points at it."""

    server: MockApnsServer

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.stack = ExitStack()
        cls.server = cls.stack.enter_context(MockApnsServer())
        cls.server.trust_key(settings.KEY_ID, settings.TEAM_ID, settings.SIGNING_KEY.public_key())
        cls.server.unregister(GONE)

    @classmethod
    def tearDownClass(cls) -> None:
        apns_django.close_client()
        cls.stack.close()
        super().tearDownClass()

    def config(self, **changes: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "KEY_FILE": settings.KEY_FILE,
            "TEAM_ID": settings.TEAM_ID,
            "TOPIC": TOPIC,
            "HOST": self.server.host,
            "PORT": self.server.port,
            "CA_FILE": self.server.ca_file,
            "RETRY": {"max_attempts": 3, "backoff_base": 0.001, "backoff_max": 0.01},
        }
        config.update(changes)
        return {k: v for k, v in config.items() if v is not None}

    def setUp(self) -> None:
        self.server.clear_received()
        overridden = override_settings(APNSKIT=self.config())
        overridden.enable()
        self.addCleanup(overridden.disable)


class SendTests(MockServerTestCase):
    def test_view_sends_with_the_process_wide_client(self) -> None:
        response = self.client.post(
            "/notify/",
            json.dumps({"device_token": GOOD, "message": "Your order shipped"}),
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"accepted": True, "status": 200, "reason": None})
        (received,) = self.server.received
        self.assertEqual(received.device_token, GOOD)
        self.assertEqual(received.topic, TOPIC)
        self.assertEqual(received.payload, {"aps": {"alert": "Your order shipped"}})

    def test_view_reports_a_rejection(self) -> None:
        response = self.client.post(
            "/notify/",
            json.dumps({"device_token": GONE, "message": "hi"}),
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 502)
        self.assertEqual(response.json()["reason"], "Unregistered")

    async def test_async_view(self) -> None:
        response = await self.async_client.post(
            "/anotify/",
            json.dumps({"device_token": GOOD, "message": "async"}),
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(len(self.server.received), 1)

    def test_send_forms(self) -> None:
        result = apns_django.send(GOOD, apnskit.Payload(alert="typed"), priority=5)
        self.assertTrue(result.accepted)
        notification = apnskit.Notification(GOOD, {"aps": {"badge": 3}}, topic=TOPIC + ".x")
        self.assertTrue(apns_django.send(notification).accepted)
        topics = [r.topic for r in self.server.received]
        self.assertEqual(topics, [TOPIC, TOPIC + ".x"])
        self.assertEqual(self.server.received[0].headers.get("apns-priority"), "5")
        with self.assertRaisesMessage(TypeError, "a device token needs a payload"):
            apns_django.send(GOOD)
        with self.assertRaisesMessage(TypeError, "Notification alone"):
            apns_django.send(notification, {"aps": {}})

    def test_send_needs_a_topic(self) -> None:
        with (
            override_settings(APNSKIT=self.config(TOPIC=None)),
            self.assertRaisesMessage(apnskit.InvalidNotificationError, "topic: not given"),
        ):
            apns_django.send(GOOD, {"aps": {"alert": "x"}})
        self.assertEqual(self.server.received, [])

    def test_send_many(self) -> None:
        tokens = [f"{i:064x}" for i in range(1, 51)]
        notes = (apnskit.Notification(t, {"aps": {"alert": "sale"}}, topic=TOPIC) for t in tokens)
        results = list(apns_django.send_many(notes))
        self.assertEqual(len(results), 50)
        self.assertTrue(all(r.accepted for r in results))
        self.assertEqual(sorted(r.device_token for r in self.server.received), tokens)


class ClientLifetimeTests(MockServerTestCase):
    def test_created_lazily_once_and_shared(self) -> None:
        self.assertIsNone(_client._client)  # nothing made by settings alone
        first = apns_django.get_client()
        self.assertIs(apns_django.get_client(), first)
        self.assertIsInstance(first, apnskit.PushClient)
        self.assertTrue(apns_django.send(GOOD, {"aps": {"alert": "x"}}).accepted)
        self.assertIs(apns_django.get_client(), first)

    def test_settings_change_closes_the_old_client(self) -> None:
        old = apns_django.get_client()
        self.assertTrue(old.send(self.note()).accepted)
        with override_settings(APNSKIT=self.config(TOPIC="com.example.other")):
            new = apns_django.get_client()
            self.assertIsNot(new, old)
            self.assertEqual(apns_django.get_settings().topic, "com.example.other")
            with self.assertRaises(apnskit.ClientClosedError):
                old.send(self.note())
            self.assertTrue(new.send(self.note()).accepted)

    def test_forked_worker_makes_its_own_client(self) -> None:
        parent = apns_django.get_client()
        with mock.patch.object(_client.os, "getpid", return_value=os.getpid() + 1):
            child = apns_django.get_client()
            self.assertIsNot(child, parent)
            self.assertTrue(child.send(self.note()).accepted)
        # The parent's connections were left alone, not closed by the "child".
        self.assertTrue(parent.send(self.note()).accepted)
        parent.close()
        # Back in the "parent", close_client() leaves the child's client alone too: a real
        # child would close it at its own exit.
        apns_django.close_client()
        self.assertTrue(child.send(self.note()).accepted)
        child.close()

    def test_closed_at_interpreter_exit(self) -> None:
        # A process that sends and exits: apnskit's atexit handler closes the client. The
        # probe is registered first, so (atexit is last-in, first-out) it runs after it.
        script = (
            "import atexit, django\n"
            "django.setup()\n"
            "import apnskit\n"
            "from apnskit.contrib.django import get_client, send\n"
            "def probe():\n"
            "    try:\n"
            "        client.send(note)\n"
            "    except apnskit.ClientClosedError:\n"
            "        print('closed at exit')\n"
            "atexit.register(probe)\n"
            f"note = apnskit.Notification({GOOD!r}, {{'aps': {{'alert': 'x'}}}}, topic={TOPIC!r})\n"
            "print('accepted' if send(note).accepted else 'not accepted')\n"
            "client = get_client()\n"
        )
        # The child's settings make a key of their own; point it at this process's key,
        # the one the mock server trusts.
        config = self.config(KEY_FILE=str(settings.KEY_FILE))
        env = {**os.environ, "APNSKIT_TEST_CONFIG": json.dumps(config)}
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.split(), ["accepted", "closed", "at", "exit"])

    def test_bad_settings_raise_improperly_configured(self) -> None:
        with override_settings(APNSKIT=self.config(TEAM_ID=None)):
            with self.assertRaisesMessage(ImproperlyConfigured, "apnskit.E006"):
                apns_django.get_client()
            with self.assertRaisesMessage(ImproperlyConfigured, "'TEAM_ID'"):
                apns_django.send(GOOD, {"aps": {"alert": "x"}})
        with override_settings():
            del settings.APNSKIT
            with self.assertRaisesMessage(ImproperlyConfigured, "settings.APNSKIT is not set"):
                apns_django.get_client()

    def test_event_hook_and_opentelemetry_from_settings(self) -> None:
        hooks.EVENTS.clear()
        config = self.config(EVENT_HOOK="pushsite.hooks.record", OPENTELEMETRY={"spans": True})
        with override_settings(APNSKIT=config):
            self.assertTrue(apns_django.send(GOOD, {"aps": {"alert": "x"}}).accepted)
        kinds = {type(e) for e in hooks.EVENTS}
        self.assertIn(apnskit.ResultReady, kinds)
        self.assertIn(apnskit.NotificationSubmitted, kinds)

    def note(self) -> apnskit.Notification:
        return apnskit.Notification(GOOD, {"aps": {"alert": "x"}}, topic=TOPIC)


class CheckTests(SimpleTestCase):
    """``manage.py check`` (the command itself, through call_command)."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.server = MockApnsServer()
        cls.tmp = Path(tempfile.mkdtemp(prefix="apnskit-checks-"))

    def check(self, config: Any) -> str:
        """Run the check command; return what it printed (warnings go to stderr)."""
        out, err = StringIO(), StringIO()
        with override_settings(APNSKIT=config):
            call_command("check", stdout=out, stderr=err)
        return out.getvalue() + err.getvalue()

    def errors(self, config: Any) -> str:
        with self.assertRaises(SystemCheckError) as caught:
            self.check(config)
        return str(caught.exception)

    def token(self, **changes: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "KEY_FILE": settings.KEY_FILE,
            "TEAM_ID": settings.TEAM_ID,
            "ENVIRONMENT": "production",
        }
        config.update(changes)
        return {k: v for k, v in config.items() if v is not None}

    def test_good_token_settings_pass(self) -> None:
        self.assertIn("no issues", self.check(self.token()))

    def test_missing_key_file(self) -> None:
        missing = self.tmp / "AuthKey_ZZZZZ11111.p8"
        text = self.errors(self.token(KEY_FILE=missing))
        self.assertIn("apnskit.E004", text)
        self.assertIn(str(missing), text)
        self.assertIn("'KEY_FILE'", text)

    def test_bad_key(self) -> None:
        bad = self.tmp / "AuthKey_BADKEY1234.p8"
        bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        text = self.errors(self.token(KEY_FILE=bad))
        self.assertIn("apnskit.E005", text)
        self.assertIn("['KEY_FILE'] cannot be used", text)
        # An RSA key is a key, but not one APNs tokens can be signed with.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        rsa_key = self.tmp / "AuthKey_RSAKEY1234.p8"
        rsa_key.write_bytes(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.assertIn("apnskit.E005", self.errors(self.token(KEY_FILE=rsa_key)))

    def test_certificate_near_expiry_warns(self) -> None:
        cert, key = self.server.issue_client_certificate(days=5)
        text = self.check({"CERT_FILE": cert, "CERT_KEY_FILE": key})
        self.assertIn("apnskit.W001", text)
        self.assertIn("expires on", text)
        self.assertIn("'com.example.app'", text)
        # The warning threshold is a setting; far from expiry, no warning.
        config = {"CERT_FILE": cert, "CERT_KEY_FILE": key, "CERT_EXPIRY_WARNING_DAYS": 2}
        self.assertNotIn("apnskit.W001", self.check(config))
        cert_long, key_long = self.server.issue_client_certificate(days=365)
        self.assertIn("no issues", self.check({"CERT_FILE": cert_long, "CERT_KEY_FILE": key_long}))

    def test_certificate_problems(self) -> None:
        cert, key = self.server.issue_client_certificate(days=365)
        other_cert, _ = self.server.issue_client_certificate(days=365)
        text = self.errors({"CERT_FILE": other_cert, "CERT_KEY_FILE": key})
        self.assertIn("apnskit.E005", text)
        self.assertIn("do not match", text)
        text = self.errors({"CERT_FILE": cert, "CERT_KEY_FILE": self.tmp / "nokey.pem"})
        self.assertIn("apnskit.E004", text)
        self.assertIn("'CERT_KEY_FILE'", text)
        sandbox_only, sandbox_key = self.server.issue_client_certificate(
            days=365, environments=["sandbox"]
        )
        text = self.errors(
            {"CERT_FILE": sandbox_only, "CERT_KEY_FILE": sandbox_key, "ENVIRONMENT": "production"}
        )
        self.assertIn("['ENVIRONMENT'] does not match the certificate", text)

    def test_setting_errors(self) -> None:
        cases: list[tuple[Any, str, str]] = [
            ({}, "apnskit.E003", "exactly one of KEY_FILE"),
            (
                self.token(CERT_FILE=settings.KEY_FILE),
                "apnskit.E003",
                "not both",
            ),
            (self.token(KEYFILE="x"), "apnskit.E002", "['KEYFILE'] is not an apnskit setting"),
            (self.token(ENVIRONMENT=None), "apnskit.E006", "['ENVIRONMENT'] is required"),
            (self.token(ENVIRONMENT="staging"), "apnskit.E006", "'staging'"),
            (self.token(TEAM_ID=None), "apnskit.E006", "['TEAM_ID'] is required"),
            (self.token(PORT=70000), "apnskit.E006", "'PORT'"),
            (self.token(TIMEOUT={"connect": -1}), "apnskit.E006", "'TIMEOUT'"),
            (self.token(LIMITS={"bogus": 1}), "apnskit.E006", "'LIMITS'"),
            (self.token(RETRY="fast"), "apnskit.E006", "'RETRY'"),
            (self.token(EVENT_HOOK="pushsite.nothing.here"), "apnskit.E006", "'EVENT_HOOK'"),
            (self.token(EVENT_HOOK=42), "apnskit.E006", "must be callable"),
            (self.token(OPENTELEMETRY={"span_sample_ratio": 2}), "apnskit.E006", "ratio"),
            (self.token(CA_FILE=self.tmp / "none.pem"), "apnskit.E004", "'CA_FILE'"),
            (self.token(TOPIC=""), "apnskit.E006", "'TOPIC'"),
            ("production", "apnskit.E001", "must be a dict"),
        ]
        for config, check_id, words in cases:
            with self.subTest(config=config):
                text = self.errors(config)
                self.assertIn(check_id, text)
                self.assertIn(words, text)

    def test_not_set(self) -> None:
        with override_settings():
            del settings.APNSKIT
            with self.assertRaises(SystemCheckError) as caught:
                call_command("check", stdout=StringIO(), stderr=StringIO())
        self.assertIn("apnskit.E001", str(caught.exception))

    def test_every_problem_at_once_and_no_secret(self) -> None:
        cert, key = self.server.issue_client_certificate(days=365)
        text = self.errors(
            {"CERT_FILE": cert, "CERT_KEY_FILE": key, "CERT_PASSWORD": "hunter2-secret", "X": 1}
        )
        self.assertIn("apnskit.E002", text)
        self.assertNotIn("hunter2-secret", text)
