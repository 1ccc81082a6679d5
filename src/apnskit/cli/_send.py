"""``apnskit send``: one notification to a few tokens, or a JSONL file of millions (``--from``).

Theory of operation: every notification, single or bulk, goes through
:meth:`apnskit.PushClient.send_many`, which pulls from an iterator only as fast as in-flight
room frees up. The bulk input is a generator over the file's lines, so memory stays flat
whatever the file's size; the only per-notification state kept is for those in flight (their
line number and original data, to write them to the failed file if they are not accepted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

from apnskit._clients.sync_client import PushClient
from apnskit._config import RetryPolicy, Timeout
from apnskit._credentials.certificate import CertificateCredentials
from apnskit._credentials.token import TokenCredentials
from apnskit._errors import ApnsError, ConfigurationError, CredentialsError
from apnskit._model.notification import Notification, PushType
from apnskit._model.results import PushResult
from apnskit.cli._options import (
    EXIT_CODES_EPILOG,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    UsageError,
    add_connection_options,
    add_credential_options,
    add_sending_options,
    environment_of,
    in_cli_terms,
    load_credentials,
    option_error,
)

__all__ = ["add_send_parser", "run_send"]

#: Distinct failure causes remembered for the end-of-run report on stderr.
_MAX_CAUSES = 5

#: Keys a bulk line may carry for the notification.
LINE_KEYS = frozenset(
    {"token", "payload", "topic", "push_type", "priority", "expiration", "collapse_id", "apns_id"}
)
#: Keys the failed file adds; ignored on input so a failed file can be sent again as it is.
RESULT_KEYS = frozenset(
    {"line", "status", "reason", "error", "timestamp", "apns_unique_id", "attempts", "raw"}
)

SEND_EXAMPLES = """\
examples:
  apnskit send --key AuthKey_ABC123DEFG.p8 --team-id TEAM123456 --sandbox \\
      --topic com.example.app --token 0123abcd... --title Hello --body "from apnskit"
  apnskit send --cert push.p12 --topic com.example.app --token 0123abcd... --alert Hi
  apnskit send ... --payload payload.json          (or --payload - to read stdin)
  apnskit send ... --from notifications.jsonl      (one {"token": ..., "payload": {...}} a line)

bulk sending (--from):
  Each line is a JSON object: "token" (required), "payload" (required unless given on the
  command line), and optionally "topic", "push_type", "priority", "expiration",
  "collapse_id", "apns_id"; the command line's values are the defaults. The file is read
  line by line, so it may hold millions. Progress goes to stderr (on a terminal, or with
  --progress); a summary by reason ends the run. Every rejected, failed or malformed line is
  written, with "line", "status", "reason" and "error", to --failed-out, which can be sent
  again as it is. A malformed line is reported with its line number and skipped.

"""


def add_send_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``send`` command to ``subparsers``.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The ``send`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "send",
        help="send notifications (to --token devices, or from a JSONL file with --from)",
        description=(
            "Send a notification to one or more device tokens, or stream many from a JSONL "
            "file (--from). With --token every result is printed (token, status, apns-id, "
            "reason, timestamp); with --from a summary by reason, with progress on stderr, and "
            "the rejected or failed lines go to --failed-out (every result with --json)."
        ),
        epilog=SEND_EXAMPLES + EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_credential_options(parser)
    add_connection_options(parser)
    _add_target_options(parser)
    _add_payload_options(parser)
    _add_output_options(parser)
    parser.set_defaults(handler=run_send)
    return parser


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("what to send where")
    target.add_argument(
        "--token", action="append", default=[], metavar="HEX", help="device token (repeatable)"
    )
    target.add_argument(
        "--from",
        dest="source",
        metavar="FILE.jsonl",
        help="send every line of this JSONL file ('-': stdin); see 'bulk sending' below",
    )
    target.add_argument(
        "--topic",
        help="apns-topic: the bundle ID (+ push type suffix); default with --cert: its UID",
    )
    target.add_argument("--push-type", choices=[p.value for p in PushType], help="apns-push-type")
    target.add_argument("--priority", type=int, choices=(10, 5, 1), help="apns-priority")
    target.add_argument(
        "--expiration",
        type=int,
        metavar="EPOCH",
        help="apns-expiration, UNIX seconds (0: try once, do not store)",
    )
    target.add_argument("--collapse-id", metavar="ID", help="apns-collapse-id (<= 64 bytes)")
    target.add_argument(
        "--apns-id", metavar="UUID", help="apns-id (one --token only; APNs makes one if omitted)"
    )


def _add_payload_options(parser: argparse.ArgumentParser) -> None:
    payload = parser.add_argument_group(
        "payload (either --payload, or built from --alert/--title/--body/--badge/--sound)"
    )
    payload.add_argument(
        "--payload", metavar="FILE.json", help="the JSON payload from a file ('-': stdin)"
    )
    payload.add_argument("--alert", metavar="TEXT", help="aps.alert as a plain string")
    payload.add_argument("--title", metavar="TEXT", help="aps.alert.title")
    payload.add_argument("--body", metavar="TEXT", help="aps.alert.body")
    payload.add_argument("--badge", type=int, metavar="N", help="aps.badge (0 clears it)")
    payload.add_argument("--sound", metavar="NAME", help='aps.sound (e.g. "default")')


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    output = parser.add_argument_group("output and behaviour")
    output.add_argument(
        "--json", action="store_true", help="print one JSON object per result (JSON Lines)"
    )
    output.add_argument(
        "--failed-out",
        metavar="FILE.jsonl",
        help="with --from: where rejected/failed/malformed lines go "
        "(default: <input>.failed.jsonl)",
    )
    progress = output.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="with --from: show progress on stderr even when it is not a terminal",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    add_sending_options(output, what="notification")


# -------------------------------------------------------------------------------- payload


def read_payload(args: argparse.Namespace, stdin: TextIO) -> dict[str, Any] | None:
    """The payload the options describe, or None when none was given.

    Args:
        args: Parsed ``send`` arguments.
        stdin: Read when ``--payload -``.

    Raises:
        UsageError: The options conflict, or the payload file is not a JSON object.
    """
    built = {
        name: getattr(args, name)
        for name in ("alert", "title", "body", "badge", "sound")
        if getattr(args, name) is not None
    }
    if args.payload is not None:
        if built:
            raise UsageError(
                "--payload: give either a payload file or --alert/--title/--body/--badge/--sound"
            )
        if args.payload == "-":
            text = stdin.read()
            where = "stdin"
        else:
            try:
                with open(args.payload, encoding="utf-8") as file:
                    text = file.read()
            except (OSError, UnicodeDecodeError) as error:
                raise UsageError(f"--payload: cannot read {args.payload}: {_why(error)}") from None
            where = args.payload
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"--payload: {where} is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise UsageError(
                f"--payload: {where} holds a JSON {type(data).__name__}, not an object "
                '(a payload looks like {"aps": {"alert": "Hi"}})'
            )
        return data
    if not built:
        return None
    if args.alert is not None and (args.title is not None or args.body is not None):
        raise UsageError("--alert: give either --alert TEXT or --title/--body, not both")
    aps: dict[str, Any] = {}
    if args.alert is not None:
        aps["alert"] = args.alert
    elif args.title is not None or args.body is not None:
        alert = {"title": args.title, "body": args.body}
        aps["alert"] = {k: v for k, v in alert.items() if v is not None}
    if args.badge is not None:
        aps["badge"] = args.badge
    if args.sound is not None:
        aps["sound"] = args.sound
    return {"aps": aps}


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


# -------------------------------------------------------------------------------- results


def describe_error(error: BaseException | None) -> str | None:
    """``"ConnectError: ..."`` for a failure's error, or None.

    Args:
        error: ``PushResult.error``.
    """
    if error is None:
        return None
    return f"{type(error).__name__}: {in_cli_terms(str(error))}"


def outcome_of(result: PushResult) -> str:
    """``"accepted"``, ``"rejected"`` or ``"failed"``.

    Args:
        result: A push result.
    """
    if result.accepted:
        return "accepted"
    return "failed" if result.failed else "rejected"


def result_record(result: PushResult) -> dict[str, Any]:
    """One result as a JSON-able dict (the ``--json`` output).

    Args:
        result: A push result.
    """
    return {
        "token": getattr(result.notification, "device_token", None),
        "outcome": outcome_of(result),
        "status": result.status,
        "apns_id": result.apns_id,
        "reason": None if result.reason is None else str(result.reason),
        "timestamp": None if result.timestamp is None else _iso(result.timestamp),
        "error": describe_error(result.error),
        "apns_unique_id": result.apns_unique_id,
        "attempts": result.attempts,
    }


def _iso(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def format_result(result: PushResult) -> str:
    """One result as a line of text: outcome, status, token, apns-id, then reason and time.

    Args:
        result: A push result.
    """
    token = getattr(result.notification, "device_token", "?")
    status = "-" if result.status is None else str(result.status)
    line = f"{outcome_of(result):<8}  {status:>3}  {token}  apns-id {result.apns_id or '-'}"
    if result.reason is not None:
        line += f"  {result.reason}"
    if result.timestamp is not None:
        line += f" (since {_iso(result.timestamp)})"
    if result.error is not None:
        line += f"  {describe_error(result.error)}"
    return line


def exit_code(accepted: int, rejected: int, failed: int, malformed: int = 0) -> int:
    """The exit code for these counts: 3 beats 2 beats 1 beats 0.

    Args:
        accepted: Accepted notifications.
        rejected: Notifications APNs rejected.
        failed: Notifications that got no answer.
        malformed: Input lines that were not valid notifications.
    """
    del accepted  # only the problems decide
    if failed:
        return EXIT_TRANSPORT
    if malformed:
        return EXIT_USAGE
    if rejected:
        return EXIT_REJECTED
    return EXIT_OK


# -------------------------------------------------------------------------------- running


def run_send(args: argparse.Namespace, *, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Run ``apnskit send``.

    Args:
        args: Parsed arguments.
        out: Standard output (results).
        err: Standard error (progress, problems).
        stdin: Standard input (``--payload -``, ``--from -``, the password prompt).

    Returns:
        The exit code.

    Raises:
        UsageError: The command line cannot work.
        CredentialsError: The credentials cannot be used.
    """
    if args.source is not None and args.token:
        raise UsageError("--from and --token: give one or the other")
    if args.source is None and not args.token:
        raise UsageError("--token: give at least one device token (or --from FILE.jsonl)")
    if args.failed_out is not None and args.source is None:
        raise UsageError("--failed-out: only with --from")
    if args.apns_id is not None and (args.source is not None or len(args.token) > 1):
        raise UsageError("--apns-id: only with a single --token (each notification needs its own)")
    if args.source == "-" and args.payload == "-":
        raise UsageError("--from - and --payload -: stdin can feed only one of them")
    # The parser checked the numbers (positive_seconds, attempts_count): these cannot fail.
    retry = RetryPolicy(max_attempts=args.attempts)
    timeout = Timeout(connect=args.connect_timeout, deadline=args.deadline)

    payload = read_payload(args, stdin)
    credentials = load_credentials(args, stdin=stdin, err=err)
    topic = args.topic
    if topic is None and isinstance(credentials, CertificateCredentials):
        uid = credentials.subject_uid
        if uid is not None:
            suffix = PushType(args.push_type).topic_suffix if args.push_type else ""
            topic = uid + suffix
    defaults = {
        "topic": topic,
        "push_type": args.push_type,
        "priority": args.priority,
        "expiration": args.expiration,
        "collapse_id": args.collapse_id,
    }

    if args.source is None:
        if payload is None:
            raise UsageError(
                "payload: give --payload FILE.json (or -), or --alert/--title/--body/--badge/"
                "--sound"
            )
        if topic is None:
            raise UsageError("--topic: required (the app's bundle ID, plus the push type suffix)")
        notifications = []
        for token in args.token:
            try:
                notifications.append(Notification(token, payload, apns_id=args.apns_id, **defaults))
            except ApnsError as error:
                print(f"apnskit send: invalid notification: {error}", file=err)
                return EXIT_USAGE
        client = _make_client(args, credentials, timeout, retry)
        return _send_few(client, notifications, args, out)

    client_args = (args, credentials, timeout, retry)
    bulk = BulkSend(
        source=args.source,
        failed_out=args.failed_out,
        defaults=defaults,
        default_payload=payload,
        json_output=args.json,
        progress=args.progress,
        out=out,
        err=err,
        stdin=stdin,
    )
    return bulk.run(lambda: _make_client(*client_args))


def _make_client(
    args: argparse.Namespace,
    credentials: TokenCredentials | CertificateCredentials,
    timeout: Timeout,
    retry: RetryPolicy,
) -> PushClient:
    try:
        return PushClient(
            credentials,
            environment=environment_of(args),
            host=args.host,
            port=args.port,
            ca_file=args.ca_file,
            timeout=timeout,
            retry=retry,
            proxy=args.proxy,
        )
    except ConfigurationError as error:
        raise option_error(error) from None
    except CredentialsError as error:
        if "environment: must be given" in str(error):
            raise UsageError(
                "--sandbox or --production: required with token auth (a signing key does not "
                "say which environment the device tokens belong to)"
            ) from None
        raise


def _send_few(
    client: PushClient, notifications: list[Notification], args: argparse.Namespace, out: TextIO
) -> int:
    counts: Counter[str] = Counter()
    with client:
        for result in client.send_many(notifications):
            counts[outcome_of(result)] += 1
            if args.json:
                print(json.dumps(result_record(result)), file=out, flush=True)
            else:
                print(format_result(result), file=out, flush=True)
    return exit_code(counts["accepted"], counts["rejected"], counts["failed"])


# -------------------------------------------------------------------------------- bulk


class LineError(Exception):
    """A line of the bulk file that is not a valid notification."""

    def __init__(self, message: str, data: dict[str, Any] | None, raw: str | None) -> None:
        super().__init__(message)
        self.data = data
        self.raw = raw


def parse_line(
    text: str, defaults: dict[str, Any], default_payload: dict[str, Any] | None
) -> tuple[dict[str, Any], Notification]:
    """Turn one JSONL line into its data and a validated notification.

    Args:
        text: The line, without its newline.
        defaults: Values from the command line for keys the line leaves out.
        default_payload: The command line's payload, for lines without ``payload``.

    Raises:
        LineError: The line is not JSON, not an object, has unknown keys, lacks a token or
            payload, or breaks a notification rule.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LineError(f"not valid JSON ({error})", None, text) from None
    if not isinstance(data, dict):
        raise LineError(f"a JSON {type(data).__name__}, not an object", None, text)
    unknown = set(data) - LINE_KEYS - RESULT_KEYS
    if unknown:
        raise LineError(
            f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(LINE_KEYS))}",
            data,
            None,
        )
    token = data.get("token")
    if not isinstance(token, str):
        raise LineError('"token": missing or not a string', data, None)
    payload = data.get("payload", default_payload)
    if payload is None:
        raise LineError('"payload": missing (and no payload given on the command line)', data, None)
    kwargs: dict[str, Any] = {
        key: data.get(key, defaults.get(key)) for key in LINE_KEYS - {"token", "payload"}
    }
    if kwargs["topic"] is None:
        raise LineError('"topic": missing (and no --topic given)', data, None)
    try:
        # The line's "token" is to_dict()'s "device_token"; the rest has the same names.
        notification = Notification.from_dict({"device_token": token, "payload": payload, **kwargs})
    except ApnsError as error:
        raise LineError(f"invalid notification: {error}", data, None) from None
    return data, notification


@dataclass
class _Tally:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    malformed: int = 0
    submitted: int = 0
    failed_written: int = 0
    interrupted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: "ConnectError: connection to ... refused" -> count; a few distinct texts at most.
    causes: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return self.accepted + self.rejected + self.failed


class _Progress:
    """A one-line progress display on stderr: rewritten in place on a terminal, else logged."""

    def __init__(self, err: TextIO, *, enabled: bool, tty: bool) -> None:
        self._err = err
        self._enabled = enabled
        self._tty = tty
        self._start = time.monotonic()
        self._last = 0.0
        # A terminal can take ten redraws a second; a log file wants a line a second at most.
        self._interval = 0.1 if tty else 1.0
        self._shown = False

    def update(self, tally: _Tally, *, final: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not final and now - self._last < self._interval:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        # A rate over less than a second (mostly connection set-up) means nothing yet.
        rate = f"{tally.done / elapsed:,.0f}/s" if final or elapsed >= 1.0 else "-/s"
        text = (
            f"{rate}  sent {tally.submitted:,}  "
            f"accepted {tally.accepted:,}  rejected {tally.rejected:,}  "
            f"failed {tally.failed:,}  malformed {tally.malformed:,}  {_clock(elapsed)}"
        )
        if self._tty:
            self._err.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self._err.write(text + "\n")
        self._err.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the progress line drawn on a terminal, so a message can take its place."""
        if self._enabled and self._tty and self._shown:
            self._err.write("\r\x1b[2K")


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class BulkSend:
    """One run of ``apnskit send --from``: read, send, count, write the failed file.

    Args:
        source: The JSONL file, or ``"-"`` for stdin.
        failed_out: Where rejected, failed and malformed lines go (default
            ``<source>.failed.jsonl``).
        defaults: Command-line values for keys a line leaves out.
        default_payload: Command-line payload for lines without one.
        json_output: Print every result as JSON (the summary then goes to stderr).
        progress: Show progress (None: when stderr is a terminal).
        out: Standard output.
        err: Standard error.
        stdin: Standard input, read when ``source`` is ``"-"``.
    """

    def __init__(
        self,
        *,
        source: str,
        failed_out: str | None,
        defaults: dict[str, Any],
        default_payload: dict[str, Any] | None,
        json_output: bool,
        progress: bool | None,
        out: TextIO,
        err: TextIO,
        stdin: TextIO,
    ) -> None:
        self.source = source
        if failed_out is None:
            failed_out = ("stdin" if source == "-" else source) + ".failed.jsonl"
        self.failed_out = failed_out
        self.defaults = defaults
        self.default_payload = default_payload
        self.json_output = json_output
        tty = _is_tty(err)
        self.progress = _Progress(err, enabled=tty if progress is None else progress, tty=tty)
        self.out = out
        self.err = err
        self.stdin = stdin
        self.tally = _Tally()
        # In flight only: id(notification) -> (notification, line number, original data).
        self._pending: dict[int, tuple[Notification, int, dict[str, Any]]] = {}
        self._failed_file: IO[str] | None = None
        #: (device, inode) of the failed file when this run created it, else None.
        self._created: tuple[int, int] | None = None
        self._line = 0

    def run(self, make_client: Any) -> int:
        """Send everything and report.

        Args:
            make_client: Builds the :class:`~apnskit.PushClient` (after the files are open,
                so a missing input file is reported before any connection).

        Returns:
            The exit code.
        """
        if self.source != "-" and os.path.abspath(self.source) == os.path.abspath(self.failed_out):
            raise UsageError("--failed-out: must not be the input file")
        try:
            source: Any = (
                getattr(self.stdin, "buffer", self.stdin)
                if self.source == "-"
                else open(self.source, "rb")  # noqa: SIM115 - closed in the finally below
            )
        except OSError as error:
            raise UsageError(f"--from: cannot read {self.source}: {_why(error)}") from None
        try:
            try:
                self._failed_file = self._open_failed_out()
            except OSError as error:
                raise UsageError(
                    f"--failed-out: cannot write {self.failed_out}: {_why(error)}"
                ) from None
            start = time.monotonic()
            interrupted = False
            with make_client() as client:
                try:
                    for result in client.send_many(self._notifications(source)):
                        self._record(result)
                        self.progress.update(self.tally)
                except KeyboardInterrupt:
                    interrupted = True
            elapsed = time.monotonic() - start
            self.progress.update(self.tally, final=True)
        finally:
            if source is not self.stdin and source is not getattr(self.stdin, "buffer", None):
                source.close()
            if self._failed_file is not None:
                # Here rather than in the except above: a second Ctrl-C while the client
                # closes must not lose them either.
                self._write_interrupted()
                self._failed_file.close()
        if self.tally.failed_written == 0:
            # Nothing to pick up: leave no stale file from an earlier run behind.
            self._remove_failed_out()
        self._summary(elapsed, interrupted)
        if interrupted:
            return 130
        t = self.tally
        return exit_code(t.accepted, t.rejected, t.failed, t.malformed)

    def _open_failed_out(self) -> IO[str]:
        """Open ``--failed-out``: a new 0600 regular file, or the special file named.

        The file holds device tokens, so it is created readable by its owner only. An existing
        regular file is replaced by a new one (as before, its content would be overwritten);
        anything else (``/dev/null``, a FIFO, a symlink) is opened as it is and never removed.
        """
        path = self.failed_out
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Not a regular file (or one that appeared meanwhile): write to it, keep it.
            fd = os.open(path, os.O_WRONLY)
        else:
            info = os.fstat(fd)
            self._created = (info.st_dev, info.st_ino)
        return os.fdopen(fd, "w", encoding="utf-8")

    def _remove_failed_out(self) -> None:
        """Remove ``--failed-out`` only if it is still the regular file this run created."""
        if self._created is None:
            return
        try:
            info = os.lstat(self.failed_out)
        except FileNotFoundError:
            return
        if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) == self._created:
            os.unlink(self.failed_out)

    def _notifications(self, source: Iterable[bytes | str]) -> Iterator[Notification]:
        for raw in source:
            self._line += 1
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            except UnicodeDecodeError as error:
                self._malformed(
                    LineError(f"not UTF-8 ({error.reason} at byte {error.start})", None, None),
                    raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw,
                )
                continue
            text = text.strip()
            if not text:
                continue
            try:
                data, notification = parse_line(text, self.defaults, self.default_payload)
            except LineError as error:
                self._malformed(error, text)
                continue
            self._pending[id(notification)] = (notification, self._line, data)
            self.tally.submitted += 1
            yield notification

    def _write_interrupted(self) -> None:
        # Read and handed to the client but never answered: APNs may or may not have
        # delivered them, and without this record a rerun from the failed file would miss
        # them. In line order (the dict keeps insertion order).
        for _notification, line, data in self._pending.values():
            record = dict(data)
            record.update(line=line, status=None, reason="interrupted", error="interrupted")
            self._write_failed(record)
            self.tally.interrupted += 1
        self._pending.clear()

    def _malformed(self, error: LineError, text: str) -> None:
        self.tally.malformed += 1
        self.progress.clear()
        print(f"{self.source}:{self._line}: {error}", file=self.err, flush=True)
        record: dict[str, Any] = dict(error.data) if error.data is not None else {"raw": text}
        record.update(line=self._line, status=None, reason="malformed", error=str(error))
        self._write_failed(record)
        if self.json_output:
            print(
                json.dumps({"line": self._line, "outcome": "malformed", "error": str(error)}),
                file=self.out,
                flush=True,
            )

    def _record(self, result: PushResult) -> None:
        # Popped only once written: a Ctrl-C in the middle leaves the line pending, so it is
        # written as interrupted rather than lost.
        entry = self._pending.get(id(result.notification))
        line, data = (entry[1], entry[2]) if entry is not None else (None, {})
        tally = self.tally
        if result.accepted:
            tally.accepted += 1
        elif result.failed:
            tally.failed += 1
            tally.errors[type(result.error).__name__ if result.error else "unknown"] += 1
            cause = describe_error(result.error) or "unknown"
            # Bounded, so a million different messages cannot grow memory without end.
            if cause in tally.causes or len(tally.causes) < _MAX_CAUSES:
                tally.causes[cause] += 1
        else:
            tally.rejected += 1
            tally.reasons[f"{result.status} {result.reason or '(no reason)'}"] += 1
        if not result.accepted:
            record = dict(data)
            record.update(
                line=line,
                status=result.status,
                reason=None if result.reason is None else str(result.reason),
                error=describe_error(result.error),
            )
            if result.timestamp is not None:
                record["timestamp"] = _iso(result.timestamp)
            self._write_failed(record)
        self._pending.pop(id(result.notification), None)
        if self.json_output:
            record = result_record(result)
            record["line"] = line
            print(json.dumps(record), file=self.out)

    def _write_failed(self, record: dict[str, Any]) -> None:
        assert self._failed_file is not None
        self._failed_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.tally.failed_written += 1

    def _summary(self, elapsed: float, interrupted: bool) -> None:
        t = self.tally
        to = self.err if self.json_output else self.out
        rate = t.done / elapsed if elapsed > 0 else 0.0
        lines = []
        if interrupted:
            lines.append(
                f"interrupted after line {self._line:,}: later lines were not read; "
                f"{t.interrupted:,} line(s) still in flight got no answer and were written to "
                f"{self.failed_out} (reason interrupted)"
            )
        lines.append(f"{t.done:,} notifications in {elapsed:.2f} s ({rate:,.0f}/s)")
        lines.append(f"  {'accepted':<34}{t.accepted:>10,}")
        lines.append(f"  {'rejected':<34}{t.rejected:>10,}")
        lines.extend(f"    {reason:<32}{n:>10,}" for reason, n in t.reasons.most_common())
        lines.append(f"  {'failed':<34}{t.failed:>10,}")
        lines.extend(f"    {name:<32}{n:>10,}" for name, n in t.errors.most_common())
        lines.append(f"  {'malformed':<34}{t.malformed:>10,}")
        if t.failed_written:
            kinds = (
                "rejected, failed, malformed or interrupted"
                if t.interrupted
                else "rejected, failed or malformed"
            )
            lines.append(f"{t.failed_written:,} {kinds} line(s) written to {self.failed_out}")
        else:
            lines.append("nothing to retry: no failed file written")
        print("\n".join(lines), file=to, flush=True)
        # Failures are problems: their cause goes to stderr, where a person or a log looks,
        # not only into the failed file.
        for cause, n in t.causes.most_common():
            print(f"apnskit send: {n:,} failed: {cause}", file=self.err, flush=True)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
