"""Settings of the test project.

APNSKIT points at a throwaway signing key made at start-up (so ``manage.py test`` passes its
system checks); the tests override it with the mock server's address. The environment
variable APNSKIT_TEST_CONFIG (JSON) replaces it, for the ``manage.py check`` tests.
"""

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SECRET_KEY = "test-only, not a secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["apnskit.contrib.django", "pushsite"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "pushsite.urls"
DATABASES: dict[str, object] = {}
USE_TZ = True

KEY_ID = "ABCDE12345"
TEAM_ID = "TEAM123456"
_key_dir = Path(tempfile.mkdtemp(prefix="apnskit-django-"))
atexit.register(shutil.rmtree, _key_dir, True)
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
KEY_FILE = _key_dir / f"AuthKey_{KEY_ID}.p8"
KEY_FILE.write_bytes(
    SIGNING_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
)

if "APNSKIT_TEST_CONFIG" in os.environ:
    APNSKIT = json.loads(os.environ["APNSKIT_TEST_CONFIG"])
else:
    APNSKIT = {
        "KEY_FILE": KEY_FILE,
        "TEAM_ID": TEAM_ID,
        "ENVIRONMENT": "sandbox",
        "TOPIC": "com.example.app",
    }
