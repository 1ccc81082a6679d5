from __future__ import annotations

import itertools
import logging
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import anyio.from_thread
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apnskit import CredentialsError, Environment, TokenCredentials

KEY_ID = "ABCDE12345"
TEAM_ID = "TEAM987654"


@pytest.fixture
def creds(p8_pem: bytes, clock: Any) -> TokenCredentials:
    return TokenCredentials(p8_pem, key_id=KEY_ID, team_id=TEAM_ID, clock=clock)


def count_signings(
    creds: TokenCredentials, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0
) -> list[int]:
    """Wrap the private signing method; return the list every signing appends its iat to."""
    calls: list[int] = []
    real = creds._sign

    def spy(issued_at: int) -> str:
        calls.append(issued_at)
        if delay:
            time.sleep(delay)  # widen the window in which other callers could sign too
        return real(issued_at)

    monkeypatch.setattr(creds, "_sign", spy)
    return calls


def jwt_of(header: str) -> str:
    assert header.startswith("bearer ")
    return header[len("bearer ") :]


# -- the JWT -----------------------------------------------------------------------------------


def test_jwt_verifies_with_public_key_and_has_apple_fields(
    creds: TokenCredentials, clock: Any, p256_key: ec.EllipticCurvePrivateKey, jwt_verifier: Any
) -> None:
    clock.now = 1_750_000_123.75
    header, generation = creds.authorization()
    assert generation == 1
    jwt_header, claims = jwt_verifier(jwt_of(header), p256_key.public_key())
    assert jwt_header == {"alg": "ES256", "kid": KEY_ID}
    assert claims == {"iss": TEAM_ID, "iat": 1_750_000_123}
    assert isinstance(claims["iat"], int)


def test_tampered_jwt_does_not_verify(
    creds: TokenCredentials, p256_key: ec.EllipticCurvePrivateKey, jwt_verifier: Any
) -> None:
    token = jwt_of(creds.authorization()[0])
    header_b64, _, signature = token.split(".")
    forged = TokenCredentials(
        serialization_pem(p256_key), key_id=KEY_ID, team_id="OTHER12345"
    ).authorization()[0]
    forged_claims = jwt_of(forged).split(".")[1]
    with pytest.raises(InvalidSignature):
        jwt_verifier(f"{header_b64}.{forged_claims}.{signature}", p256_key.public_key())


def test_jwt_does_not_verify_with_another_key(creds: TokenCredentials, jwt_verifier: Any) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(InvalidSignature):
        jwt_verifier(jwt_of(creds.authorization()[0]), other)


def serialization_pem(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_key_as_str_or_bytes_and_public_key(
    p8_pem: bytes, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    from_str = TokenCredentials(p8_pem.decode(), key_id=KEY_ID, team_id=TEAM_ID)
    from_bytes = TokenCredentials(p8_pem, key_id=KEY_ID, team_id=TEAM_ID)
    expected = p256_key.public_key().public_numbers()
    assert from_str.public_key.public_numbers() == expected
    assert from_bytes.public_key.public_numbers() == expected
    assert from_str.key_id == KEY_ID
    assert from_str.team_id == TEAM_ID


def test_traditional_ec_pem_is_accepted(
    p256_key: ec.EllipticCurvePrivateKey, key_to_pem: Any
) -> None:
    pem = key_to_pem(p256_key, traditional=True)
    assert b"BEGIN EC PRIVATE KEY" in pem
    creds = TokenCredentials(pem, key_id=KEY_ID, team_id=TEAM_ID)
    assert creds.public_key.public_numbers() == p256_key.public_key().public_numbers()


# -- from_file ---------------------------------------------------------------------------------


def test_from_file_takes_key_id_from_apple_file_name(
    tmp_path: Path, p8_pem: bytes, jwt_verifier: Any, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "AuthKey_ZZZZZ99999.p8"
    path.write_bytes(p8_pem)
    creds = TokenCredentials.from_file(path, team_id=TEAM_ID)
    assert creds.key_id == "ZZZZZ99999"
    header, _ = jwt_verifier(jwt_of(creds.authorization()[0]), p256_key.public_key())
    assert header["kid"] == "ZZZZZ99999"
    # str paths too, and an explicit key id wins over the file name
    explicit = TokenCredentials.from_file(str(path), team_id=TEAM_ID, key_id=KEY_ID)
    assert explicit.key_id == KEY_ID


def test_from_file_passes_options(tmp_path: Path, p8_pem: bytes, clock: Any) -> None:
    path = tmp_path / "AuthKey_ABCDE12345.p8"
    path.write_bytes(p8_pem)
    creds = TokenCredentials.from_file(path, team_id=TEAM_ID, refresh_after=1500, clock=clock)
    assert creds.refresh_after == 1500.0
    creds.authorization()
    clock.advance(1500)
    assert creds.authorization()[1] == 2


def test_from_file_without_key_id_and_other_name(tmp_path: Path, p8_pem: bytes) -> None:
    path = tmp_path / "signing-key.p8"
    path.write_bytes(p8_pem)
    with pytest.raises(CredentialsError, match=r"key_id: not given.*'signing-key\.p8'.*AuthKey_"):
        TokenCredentials.from_file(path, team_id=TEAM_ID)


def test_from_file_missing_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey_ABCDE12345.p8"
    with pytest.raises(CredentialsError, match=r"no such file") as info:
        TokenCredentials.from_file(path, team_id=TEAM_ID)
    assert str(path) in str(info.value)


def test_from_file_directory(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey_ABCDE12345.p8"
    path.mkdir()
    with pytest.raises(CredentialsError, match=r"is a directory") as info:
        TokenCredentials.from_file(path, team_id=TEAM_ID)
    assert str(path) in str(info.value)


# -- key errors --------------------------------------------------------------------------------


def test_not_a_pem() -> None:
    with pytest.raises(CredentialsError, match=r"key: not a PEM private key$"):
        TokenCredentials(b"\x00\x01garbage", key_id=KEY_ID, team_id=TEAM_ID)


def test_path_given_as_key_gets_a_hint() -> None:
    with pytest.raises(CredentialsError, match=r"looks like a path.*from_file"):
        TokenCredentials("/keys/AuthKey_ABCDE12345.p8", key_id=KEY_ID, team_id=TEAM_ID)


def test_key_of_wrong_type() -> None:
    with pytest.raises(CredentialsError, match=r"key: must be the PEM text.*not int"):
        TokenCredentials(123, key_id=KEY_ID, team_id=TEAM_ID)  # type: ignore[arg-type]


def test_certificate_instead_of_key(cert_factory: Any) -> None:
    with pytest.raises(
        CredentialsError, match=r"key: the PEM holds CERTIFICATE, not a private key"
    ):
        TokenCredentials(cert_factory().cert_pem, key_id=KEY_ID, team_id=TEAM_ID)


def test_rsa_key_says_rsa(rsa_key: Any, key_to_pem: Any) -> None:
    pem = key_to_pem(rsa_key)
    with pytest.raises(
        CredentialsError, match=r"key: an RSA private key \(2048 bits\).*EC P-256"
    ) as info:
        TokenCredentials(pem, key_id=KEY_ID, team_id=TEAM_ID)
    assert_no_pem(str(info.value), pem)


def test_p384_key_says_p384(p384_key: Any, key_to_pem: Any) -> None:
    pem = key_to_pem(p384_key)
    with pytest.raises(
        CredentialsError, match=r"key: an EC P-384 \(secp384r1\) private key.*EC P-256"
    ) as info:
        TokenCredentials(pem, key_id=KEY_ID, team_id=TEAM_ID)
    assert_no_pem(str(info.value), pem)


@pytest.mark.parametrize("traditional", [False, True])
def test_encrypted_key(p256_key: Any, key_to_pem: Any, traditional: bool) -> None:
    pem = key_to_pem(p256_key, b"s3cret-pass", traditional=traditional)
    with pytest.raises(CredentialsError, match=r"key: the private key is encrypted") as info:
        TokenCredentials(pem, key_id=KEY_ID, team_id=TEAM_ID)
    assert "s3cret-pass" not in str(info.value)
    assert_no_pem(str(info.value), pem)


def test_damaged_pem(p8_pem: bytes) -> None:
    lines = p8_pem.splitlines()
    damaged = b"\n".join([lines[0], b"AAAA" + lines[1][4:], *lines[2:]]) + b"\n"
    with pytest.raises(CredentialsError, match=r"damaged") as info:
        TokenCredentials(damaged, key_id=KEY_ID, team_id=TEAM_ID)
    assert_no_pem(str(info.value), damaged)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def assert_no_pem(message: str, pem: bytes) -> None:
    assert "BEGIN" not in message
    for line in pem.splitlines()[1:-1]:
        if len(line) >= 16 and b":" not in line:  # base64 body lines, not PEM headers
            assert line.decode() not in message


@pytest.mark.parametrize("field", ["key_id", "team_id"])
@pytest.mark.parametrize(
    "value", ["abcde12345", "ABCDE1234", "ABCDE123456", "ABCDE-1234", " ABCDE1234"]
)
def test_bad_ids(p8_pem: bytes, field: str, value: str) -> None:
    kwargs: dict[str, Any] = {"key_id": KEY_ID, "team_id": TEAM_ID, field: value}
    with pytest.raises(
        CredentialsError, match=rf"^{field}: .* must be 10 characters of A-Z and 0-9"
    ) as info:
        TokenCredentials(p8_pem, **kwargs)
    assert repr(value) in str(info.value)


def test_bad_id_type_and_long_values_not_echoed(p8_pem: bytes) -> None:
    with pytest.raises(CredentialsError, match=r"key_id: a NoneType is not"):
        TokenCredentials(p8_pem, key_id=None, team_id=TEAM_ID)  # type: ignore[arg-type]
    # the key pasted into the wrong argument must not come back in the message
    with pytest.raises(CredentialsError, match=r"team_id: a string of \d+ characters") as info:
        TokenCredentials(p8_pem, key_id=KEY_ID, team_id=p8_pem.decode())
    assert_no_pem(str(info.value), p8_pem)


@pytest.mark.parametrize("value", [1199, 3301, 0, -5, float("nan"), True, "3000", None])
def test_refresh_after_out_of_range(p8_pem: bytes, value: Any) -> None:
    with pytest.raises(CredentialsError, match=r"refresh_after: .* within 1200\.\.3300"):
        TokenCredentials(p8_pem, key_id=KEY_ID, team_id=TEAM_ID, refresh_after=value)


@pytest.mark.parametrize("value", [1200, 1200.0, 3000, 3300])
def test_refresh_after_bounds_accepted(p8_pem: bytes, value: float) -> None:
    assert (
        TokenCredentials(p8_pem, key_id=KEY_ID, team_id=TEAM_ID, refresh_after=value).refresh_after
        == value
    )


# -- renewal -----------------------------------------------------------------------------------


def test_same_token_until_refresh_after_then_renewed(
    creds: TokenCredentials, clock: Any, monkeypatch: pytest.MonkeyPatch, jwt_verifier: Any
) -> None:
    signings = count_signings(creds, monkeypatch)
    start = clock.now
    first = creds.authorization()
    clock.advance(2999.9)
    assert creds.authorization() == first
    assert len(signings) == 1
    clock.advance(0.1)  # exactly 3000 s (the default, 50 minutes) after the first
    second = creds.authorization()
    assert second[1] == 2
    assert second[0] != first[0]
    assert signings == [int(start), int(start + 3000)]
    _, claims = jwt_verifier(jwt_of(second[0]), creds.public_key)
    assert claims["iat"] == int(start + 3000)
    assert creds.generation == 2


def test_no_token_before_first_request(
    creds: TokenCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch)
    assert creds.generation == 0
    assert signings == []


@pytest.mark.parametrize("refresh_after", [1200, 2000, 3000, 3300])
def test_renewals_never_closer_than_20_minutes(
    p8_pem: bytes, clock: Any, monkeypatch: pytest.MonkeyPatch, refresh_after: float
) -> None:
    creds = TokenCredentials(
        p8_pem, key_id=KEY_ID, team_id=TEAM_ID, refresh_after=refresh_after, clock=clock
    )
    signings = count_signings(creds, monkeypatch)
    # a request every 7 s for 6 hours
    for _ in range(6 * 3600 // 7):
        creds.authorization()
        clock.advance(7)
    gaps = [b - a for a, b in itertools.pairwise(signings)]
    assert len(signings) >= 6 * 3600 // 3300
    assert min(gaps) >= 1200
    assert min(gaps) >= refresh_after
    # and never older than an hour: each renewal within refresh_after + one request interval
    assert max(gaps) <= refresh_after + 7


def test_fresh_calls_take_no_lock(creds: TokenCredentials) -> None:
    creds.authorization()
    real_lock = creds._lock
    spy = mock.MagicMock(wraps=real_lock)
    spy.__enter__ = mock.MagicMock(side_effect=lambda *a: real_lock.__enter__())
    spy.__exit__ = mock.MagicMock(side_effect=real_lock.__exit__)
    creds._lock = spy
    for _ in range(1000):
        creds.authorization()
    assert spy.__enter__.call_count == 0
    assert spy.acquire.call_count == 0


def test_sixteen_threads_one_signing(
    creds: TokenCredentials, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch, delay=0.02)
    barrier = threading.Barrier(16)
    results: list[tuple[str, int]] = []
    results_lock = threading.Lock()

    def ask() -> None:
        barrier.wait()
        value = creds.authorization()
        with results_lock:
            results.append(value)

    def run_round() -> None:
        threads = [threading.Thread(target=ask) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run_round()
    assert len(signings) == 1
    assert len(results) == 16
    assert len(set(results)) == 1
    assert results[0][1] == 1

    # when the token is due, sixteen threads asking at once still cause a single renewal
    results.clear()
    clock.advance(3000)
    run_round()
    assert len(signings) == 2
    assert set(results) == {results[0]}
    assert results[0][1] == 2


@pytest.mark.anyio
async def test_many_tasks_one_signing(
    creds: TokenCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch, delay=0.01)
    # Eight tasks ask from worker threads, released together; eight more ask from the event
    # loop itself once the threads are on their way.
    barrier = threading.Barrier(8)
    start = anyio.Event()
    results: list[tuple[str, int]] = []

    def ask_after_barrier() -> tuple[str, int]:
        if barrier.wait() == 0:
            anyio.from_thread.run_sync(start.set)
        return creds.authorization()

    async def in_thread() -> None:
        results.append(await anyio.to_thread.run_sync(ask_after_barrier))

    async def in_loop() -> None:
        await start.wait()
        results.append(creds.authorization())

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(in_thread)
            tg.start_soon(in_loop)
    assert len(results) == 16
    assert len(signings) == 1
    assert set(results) == {results[0]}


def test_shared_across_event_loops(
    creds: TokenCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch, delay=0.01)
    barrier = threading.Barrier(2)
    results: dict[str, tuple[str, int]] = {}

    async def ask(name: str) -> None:
        await anyio.to_thread.run_sync(barrier.wait)
        results[name] = creds.authorization()

    threads = [
        threading.Thread(target=anyio.run, args=(ask, backend), kwargs={"backend": backend})
        for backend in ("asyncio", "trio")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["asyncio"] == results["trio"]
    assert len(signings) == 1


# -- ExpiredProviderToken --------------------------------------------------------------------


def test_rejection_renews_once_per_generation(
    creds: TokenCredentials, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch)
    first, generation = creds.authorization()
    clock.advance(600)
    for _ in range(10):  # a burst: every in-flight request with that token was rejected
        creds.token_rejected(generation)
    assert len(signings) == 2
    second, new_generation = creds.authorization()
    assert new_generation == generation + 1
    assert second != first
    # a late rejection of the old token changes nothing
    creds.token_rejected(generation)
    assert creds.authorization() == (second, new_generation)
    assert len(signings) == 2
    # the renewal also restarts the proactive schedule
    clock.advance(2999)
    assert creds.authorization()[1] == new_generation
    clock.advance(1)
    assert creds.authorization()[1] == new_generation + 1


def test_rejection_of_unknown_generation_is_ignored(
    creds: TokenCredentials, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch)
    creds.token_rejected(0)  # before any token was made
    assert signings == []
    _, generation = creds.authorization()
    clock.advance(600)
    creds.token_rejected(generation + 5)
    creds.token_rejected(0)
    assert len(signings) == 1


def test_concurrent_rejections_renew_once(
    creds: TokenCredentials, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, generation = creds.authorization()
    signings = count_signings(creds, monkeypatch, delay=0.01)
    clock.advance(600)
    barrier = threading.Barrier(16)

    def reject() -> None:
        barrier.wait()
        creds.token_rejected(generation)

    threads = [threading.Thread(target=reject) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(signings) == 1
    assert creds.generation == generation + 1


def test_fresh_tokens_keep_rejected_means_check_the_clock(
    creds: TokenCredentials, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signings = count_signings(creds, monkeypatch)
    _, generation = creds.authorization()
    clock.advance(1)
    # a fresh token rejected once: renew and let the request be retried
    creds.token_rejected(generation)
    header, generation = creds.authorization()
    assert generation == 2
    clock.advance(1)
    # the brand-new token rejected too: the clock is wrong, renewing again cannot help
    with pytest.raises(
        CredentialsError, match=r"right after it was made.*check the system clock"
    ) as info:
        creds.token_rejected(generation)
    assert jwt_of(header) not in str(info.value)
    assert len(signings) == 2
    assert creds.authorization() == (header, generation)
    # still failing for further rejections of that token while it is fresh
    with pytest.raises(CredentialsError, match=r"check the system clock"):
        creds.token_rejected(generation)
    # once the token is old enough, a rejection renews again (and the count starts over)
    clock.advance(120)
    creds.token_rejected(generation)
    assert creds.generation == 3
    assert len(signings) == 3


def test_only_consecutive_fresh_rejections_blame_the_clock(
    creds: TokenCredentials, clock: Any
) -> None:
    _, generation = creds.authorization()
    clock.advance(1)
    creds.token_rejected(generation)  # one fresh rejection: renewed
    clock.advance(3000)
    _, generation = creds.authorization()  # a scheduled renewal much later
    assert generation == 3
    clock.advance(1)
    creds.token_rejected(generation)  # fresh again, but not a streak: renewed, no error
    assert creds.generation == 4


def test_old_token_rejections_never_blame_the_clock(creds: TokenCredentials, clock: Any) -> None:
    for expected in range(1, 6):
        _, generation = creds.authorization()
        assert generation == expected
        clock.advance(3600)
        creds.token_rejected(generation)


# -- environment, TLS, secrets -----------------------------------------------------------------


def test_environment_must_be_given(creds: TokenCredentials) -> None:
    with pytest.raises(
        CredentialsError, match=r"environment: must be given with token credentials"
    ):
        creds.resolve_environment(None)
    assert creds.resolve_environment("sandbox") is Environment.SANDBOX
    assert creds.resolve_environment("development") is Environment.SANDBOX
    assert creds.resolve_environment("production") is Environment.PRODUCTION
    assert creds.resolve_environment(Environment.PRODUCTION) is Environment.PRODUCTION
    with pytest.raises(ValueError, match=r"not an APNs environment"):
        creds.resolve_environment("staging")


def test_configure_ssl_context_is_a_no_op(creds: TokenCredentials) -> None:
    context = mock.create_autospec(ssl.SSLContext, instance=True)
    creds.configure_ssl_context(context)
    assert context.mock_calls == []


def test_repr_and_str_free_of_secrets(creds: TokenCredentials, p8_pem: bytes) -> None:
    header, _ = creds.authorization()
    for text in (repr(creds), str(creds)):
        assert text == f"TokenCredentials(key_id={KEY_ID!r}, team_id={TEAM_ID!r})"
        assert jwt_of(header) not in text
        assert_no_pem(text, p8_pem)


def test_logs_free_of_secrets(
    creds: TokenCredentials, clock: Any, caplog: pytest.LogCaptureFixture, p8_pem: bytes
) -> None:
    caplog.set_level(logging.DEBUG, logger="apnskit")
    tokens = [creds.authorization()]
    clock.advance(600)
    creds.token_rejected(tokens[0][1])
    tokens.append(creds.authorization())
    clock.advance(3000)
    tokens.append(creds.authorization())
    assert [t[1] for t in tokens] == [1, 2, 3]
    text = caplog.text
    assert "rejected provider token 1" in text
    assert "made provider token 3" in text
    for header, _ in tokens:
        assert jwt_of(header) not in text
        for part in jwt_of(header).split("."):
            assert part not in text
    assert_no_pem(text, p8_pem)


def test_file_permissions_are_not_touched(tmp_path: Path, p8_pem: bytes) -> None:
    # reading the key does not create or change files
    path = tmp_path / "AuthKey_ABCDE12345.p8"
    path.write_bytes(p8_pem)
    os.chmod(path, 0o400)
    TokenCredentials.from_file(path, team_id=TEAM_ID).authorization()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["AuthKey_ABCDE12345.p8"]
    assert (path.stat().st_mode & 0o777) == 0o400


def test_ed25519_key_says_so(key_to_pem: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    with pytest.raises(CredentialsError, match=r"key: an Ed25519 private key; .*EC P-256"):
        TokenCredentials(
            key_to_pem(ed25519.Ed25519PrivateKey.generate()), key_id=KEY_ID, team_id=TEAM_ID
        )


def test_renewal_schedule_runs_on_the_monotonic_clock(
    p8_pem: bytes, jwt_verifier: Any, clock: Any
) -> None:
    # Issue 11 item 9: a wall-clock step (NTP, a VM resumed) must neither renew the token
    # early (a storm of renewals, TooManyProviderTokenUpdates) nor keep it past its hour.
    wall = clock
    mono = type(clock)(100.0)
    creds = TokenCredentials(p8_pem, key_id=KEY_ID, team_id=TEAM_ID, clock=wall, monotonic=mono)
    first = creds.authorization()
    wall.advance(-5 * 3600)  # the clock steps back five hours
    assert creds.authorization() == first
    wall.advance(2 * 86400)  # then forward two days
    for _ in range(10):
        assert creds.authorization() == first  # no renewal: the token is 0 s old
    mono.advance(creds.refresh_after)
    bearer, generation = creds.authorization()
    assert generation == 2
    _, claims = jwt_verifier(bearer.removeprefix("bearer "), creds.public_key)
    assert claims["iat"] == int(wall.now)  # only the iat is wall time
