"""``apnskit channels create|list|get|delete`` and ``apnskit broadcast`` (iOS 18 broadcast push).

Channel commands talk to the channel-management host (Apple's
``api-manage-broadcast[.sandbox].push.apple.com`` on 2195/2196, or ``--host`` when given, as
the mock server serves both); ``broadcast`` sends one Live Activity update or end to every
device subscribed to a channel. Both use :class:`apnskit.PushClient` with the same credential
and connection options and exit codes as ``send``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, TextIO

from apnskit._clients.sync_client import PushClient
from apnskit._config import RetryPolicy, Timeout
from apnskit._credentials.certificate import CertificateCredentials
from apnskit._credentials.token import TokenCredentials
from apnskit._errors import ConfigurationError, CredentialsError
from apnskit._model.broadcast import (
    BroadcastNotification,
    Channel,
    ChannelError,
    MessageStoragePolicy,
)
from apnskit._model.payload import Alert, LiveActivityEvent, Payload
from apnskit._model.results import PushResult
from apnskit.cli._options import (
    CHANNELS_EXIT_CODES,
    EXIT_CODES_EPILOG,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_TRANSPORT,
    UsageError,
    add_connection_options,
    add_credential_options,
    add_sending_options,
    environment_of,
    load_credentials,
    option_error,
    port_number,
)
from apnskit.cli._send import describe_error, outcome_of, read_payload

__all__ = ["add_broadcast_parser", "add_channels_parser", "run_broadcast", "run_channels"]

#: ``--policy`` spellings and the storage policy each names.
POLICIES: dict[str, MessageStoragePolicy] = {
    "no-storage": MessageStoragePolicy.NO_MESSAGE_STORED,
    "0": MessageStoragePolicy.NO_MESSAGE_STORED,
    "most-recent": MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED,
    "1": MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED,
}
_POLICY_NAMES = {
    MessageStoragePolicy.NO_MESSAGE_STORED: "no-storage",
    MessageStoragePolicy.MOST_RECENT_MESSAGE_STORED: "most-recent",
}

CHANNELS_EXAMPLES = """\
examples:
  apnskit channels create --key AuthKey_ABC123DEFG.p8 --team-id TEAM123456 --sandbox \\
      --bundle-id com.example.app --policy most-recent
  apnskit channels list   ... --bundle-id com.example.app
  apnskit channels get    ... --bundle-id com.example.app --channel dHN0LXNyY2gtY2hubA==
  apnskit channels delete ... --bundle-id com.example.app --channel dHN0LXNyY2gtY2hubA==

Channel requests go to Apple's channel-management host (api-manage-broadcast.sandbox.push.
apple.com:2195, or api-manage-broadcast.push.apple.com:2196 with --production); with --host
(a proxy, the mock server) to that host, unless --management-host says otherwise.

"""

BROADCAST_EXAMPLES = """\
examples:
  apnskit broadcast --key AuthKey_ABC123DEFG.p8 --team-id TEAM123456 --sandbox \\
      --bundle-id com.example.app --channel dHN0LXNyY2gtY2hubA== \\
      --content-state '{"score": "2 - 1"}' --title Goal! --body "2 - 1"
  apnskit broadcast ... --event end --content-state '{"score": "3 - 1"}' --dismissal-date 0
  apnskit broadcast ... --payload update.json          (or --payload - to read stdin)

apns-expiration is required on every broadcast: without --expiration, 0 is sent (deliver
once, store nothing), the only value a --policy no-storage channel takes.

"""


def _add_shared(parser: argparse.ArgumentParser, *, management: bool) -> None:
    add_credential_options(parser)
    add_connection_options(parser)
    if management:
        group = parser.add_argument_group("channel-management host")
        group.add_argument(
            "--management-host",
            metavar="HOST",
            help="send channel requests here (default: Apple's, or --host when given)",
        )
        group.add_argument(
            "--management-port",
            metavar="PORT",
            type=port_number,
            help="its port (default 2195 sandbox, 2196 production, or --port with --host)",
        )
    parser.add_argument(
        "--bundle-id",
        metavar="ID",
        help="the app's bundle ID, without suffix (default with --cert: the certificate's UID)",
    )
    parser.add_argument(
        "--request-id", metavar="UUID", help="apns-request-id (APNs makes one if omitted)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_sending_options(parser, what="request", note="; create is never resent blindly")


def add_channels_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``channels`` command (``create``, ``list``, ``get``, ``delete``).

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The ``channels`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "channels",
        help="manage broadcast channels (iOS 18): create, list, get, delete",
        description="Create, list, read and delete an app's Live Activity broadcast channels.",
        epilog=CHANNELS_EXAMPLES + CHANNELS_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    helps = {
        "create": "create a channel and print its id",
        "list": "print the id of every channel of the app, one a line",
        "get": "print one channel's storage policy and push type",
        "delete": "delete a channel",
    }
    for action, text in helps.items():
        sub = actions.add_parser(
            action,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=CHANNELS_EXAMPLES + CHANNELS_EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_shared(sub, management=True)
        if action in ("get", "delete"):
            sub.add_argument(
                "--channel", metavar="ID", required=True, help="the channel id (base64)"
            )
        if action == "create":
            sub.add_argument(
                "--policy",
                choices=list(POLICIES),
                default="no-storage",
                help="message storage policy: no-storage (0, the default: broadcasts must have "
                "expiration 0) or most-recent (1: APNs keeps the latest for offline devices)",
            )
        sub.set_defaults(handler=run_channels)
    return parser


def add_broadcast_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``broadcast`` command.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The ``broadcast`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "broadcast",
        help="send a Live Activity update or end to a broadcast channel (iOS 18)",
        description=(
            "Broadcast one Live Activity update (or end) to every device subscribed to a "
            "channel. The result is printed: outcome, status, channel, apns-request-id, reason."
        ),
        epilog=BROADCAST_EXAMPLES + EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_shared(parser, management=False)
    target = parser.add_argument_group("where to broadcast")
    target.add_argument("--channel", metavar="ID", required=True, help="the channel id (base64)")
    target.add_argument("--priority", type=int, choices=(10, 5, 1), help="apns-priority")
    target.add_argument(
        "--expiration",
        type=int,
        metavar="EPOCH",
        help="apns-expiration, UNIX seconds (default 0: deliver once, store nothing; a "
        "no-storage channel takes only 0)",
    )
    payload = parser.add_argument_group(
        "payload (either --payload, or built from --event/--content-state and friends)"
    )
    payload.add_argument(
        "--payload", metavar="FILE.json", help="the JSON payload from a file ('-': stdin)"
    )
    payload.add_argument(
        "--event", choices=("update", "end"), default=None, help="aps.event (default update)"
    )
    payload.add_argument(
        "--content-state", metavar="JSON", help="aps.content-state, a JSON object (required)"
    )
    payload.add_argument(
        "--timestamp", type=int, metavar="EPOCH", help="aps.timestamp, UNIX seconds (default now)"
    )
    payload.add_argument("--alert", metavar="TEXT", help="aps.alert as a plain string")
    payload.add_argument("--title", metavar="TEXT", help="aps.alert.title")
    payload.add_argument("--body", metavar="TEXT", help="aps.alert.body")
    payload.add_argument("--stale-date", type=int, metavar="EPOCH", help="aps.stale-date")
    payload.add_argument("--dismissal-date", type=int, metavar="EPOCH", help="aps.dismissal-date")
    parser.set_defaults(handler=run_broadcast)
    return parser


# -------------------------------------------------------------------------------- shared


def _client(
    args: argparse.Namespace, credentials: TokenCredentials | CertificateCredentials
) -> PushClient:
    try:
        retry = RetryPolicy(max_attempts=args.attempts)
        timeout = Timeout(connect=args.connect_timeout, deadline=args.deadline)
        return PushClient(
            credentials,
            environment=environment_of(args),
            host=args.host,
            port=args.port,
            management_host=getattr(args, "management_host", None),
            management_port=getattr(args, "management_port", None),
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
                "say which environment its channels belong to)"
            ) from None
        raise


def _bundle_id(
    args: argparse.Namespace, credentials: TokenCredentials | CertificateCredentials
) -> str:
    if args.bundle_id is not None:
        return str(args.bundle_id)
    if isinstance(credentials, CertificateCredentials) and credentials.subject_uid is not None:
        return credentials.subject_uid
    raise UsageError("--bundle-id: required (the app's bundle ID, without a push type suffix)")


def _failure_code(error: ChannelError) -> int:
    # No answer at all is a transport problem (3); an answer that is not a success is 1.
    return EXIT_TRANSPORT if error.result.status is None else EXIT_REJECTED


def _error_record(action: str, error: ChannelError) -> dict[str, Any]:
    result = error.result
    return {
        "action": action,
        # A 2xx that lacks what Apple documents (the channel id header) is not a success.
        "outcome": "failed" if result.status is None else "rejected",
        "status": result.status,
        "reason": None if result.reason is None else str(result.reason),
        "request_id": result.request_id,
        "error": str(error),
    }


def _channel_record(action: str, channel: Channel) -> dict[str, Any]:
    policy = channel.message_storage_policy
    return {
        "action": action,
        "outcome": "accepted",
        "channel_id": channel.channel_id,
        "bundle_id": channel.bundle_id,
        "message_storage_policy": None if policy is None else int(policy),
        "push_type": channel.push_type,
        "request_id": channel.request_id,
    }


def _describe_policy(policy: MessageStoragePolicy | None) -> str:
    if policy is None:
        return "unknown"
    return f"{_POLICY_NAMES[MessageStoragePolicy(policy)]} ({int(policy)})"


# -------------------------------------------------------------------------------- channels


def run_channels(args: argparse.Namespace, *, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Run ``apnskit channels <action>``.

    Args:
        args: Parsed arguments.
        out: Standard output (the result).
        err: Standard error (problems).
        stdin: Standard input (the password prompt).

    Returns:
        The exit code: 0 done, 1 APNs refused, 2 usage error, 3 no answer.

    Raises:
        UsageError: The command line cannot work.
        CredentialsError: The credentials cannot be used.
        InvalidNotificationError: A bad bundle ID, channel id or request id.
    """
    credentials = load_credentials(args, stdin=stdin, err=err)
    bundle = _bundle_id(args, credentials)
    action: str = args.action
    with _client(args, credentials) as client:
        try:
            if action == "create":
                channel = client.create_channel(
                    bundle,
                    message_storage_policy=POLICIES[args.policy],
                    request_id=args.request_id,
                )
                if args.json:
                    print(json.dumps(_channel_record(action, channel)), file=out)
                else:
                    # The id alone on stdout, so CHANNEL=$(apnskit channels create ...) works.
                    print(channel.channel_id, file=out)
            elif action == "get":
                channel = client.get_channel(bundle, args.channel, request_id=args.request_id)
                if args.json:
                    print(json.dumps(_channel_record(action, channel)), file=out)
                else:
                    print(
                        f"channel {channel.channel_id}  policy "
                        f"{_describe_policy(channel.message_storage_policy)}  push-type "
                        f"{channel.push_type or '-'}",
                        file=out,
                    )
            elif action == "list":
                ids = client.list_channels(bundle, request_id=args.request_id)
                if args.json:
                    record = {"action": action, "outcome": "accepted", "bundle_id": bundle}
                    print(json.dumps({**record, "channels": ids}), file=out)
                else:
                    for channel_id in ids:
                        print(channel_id, file=out)
            else:
                client.delete_channel(bundle, args.channel, request_id=args.request_id)
                if args.json:
                    record = {"action": action, "outcome": "accepted", "channel_id": args.channel}
                    print(json.dumps(record), file=out)
                else:
                    print(f"deleted {args.channel}", file=out)
        except ChannelError as error:
            if args.json:
                print(json.dumps(_error_record(action, error)), file=out)
            print(f"apnskit channels {action}: {error}", file=err)
            return _failure_code(error)
    return EXIT_OK


# -------------------------------------------------------------------------------- broadcast


def _json_object(option: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{option}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise UsageError(
            f'{option}: a JSON {type(value).__name__}, not an object (like {{"score": 1}})'
        )
    return value


def build_broadcast_payload(
    args: argparse.Namespace, stdin: TextIO, *, now: float | None = None
) -> Payload | dict[str, Any]:
    """The payload ``broadcast``'s options describe.

    Args:
        args: Parsed ``broadcast`` arguments.
        stdin: Read for ``--payload -``.
        now: The time for the default ``--timestamp`` (default: the current time).

    Raises:
        UsageError: The options conflict or lack the content state.
        InvalidNotificationError: A value breaks one of Apple's Live Activity rules.
    """
    built = [
        f"--{name.replace('_', '-')}"
        for name in (
            "event",
            "content_state",
            "timestamp",
            "alert",
            "title",
            "body",
            "stale_date",
            "dismissal_date",
        )
        if getattr(args, name) is not None
    ]
    if args.payload is not None:
        if built:
            raise UsageError(f"--payload: give either a payload file or {', '.join(built)}")
        # send's reader: --alert/--title/--body are unset here (checked above); broadcast has
        # no --badge or --sound.
        payload = read_payload(argparse.Namespace(**vars(args), badge=None, sound=None), stdin)
        assert payload is not None
        return payload
    if args.content_state is None:
        raise UsageError(
            "--content-state: required (the Live Activity's ContentState as a JSON object), "
            "or give the whole payload with --payload FILE.json"
        )
    if args.alert is not None and (args.title is not None or args.body is not None):
        raise UsageError("--alert: give either --alert TEXT or --title/--body, not both")
    content_state = _json_object("--content-state", args.content_state)
    alert: str | Alert | None = args.alert
    if args.title is not None or args.body is not None:
        alert = Alert(title=args.title, body=args.body)
    timestamp = args.timestamp if args.timestamp is not None else int(now or time.time())
    event = LiveActivityEvent(args.event or "update")
    build = (
        Payload.live_activity_end
        if event is LiveActivityEvent.END
        else (Payload.live_activity_update)
    )
    return build(
        content_state=content_state,
        timestamp=timestamp,
        alert=alert,
        stale_date=args.stale_date,
        dismissal_date=args.dismissal_date,
    )


def broadcast_record(result: PushResult) -> dict[str, Any]:
    """One broadcast result as a JSON-able dict (the ``--json`` output).

    Args:
        result: The result of ``send_broadcast``.
    """
    item = result.notification
    return {
        "channel_id": getattr(item, "channel_id", None),
        "outcome": outcome_of(result),
        "status": result.status,
        "request_id": result.request_id,
        "reason": None if result.reason is None else str(result.reason),
        "error": describe_error(result.error),
        "attempts": result.attempts,
    }


def format_broadcast(result: PushResult) -> str:
    """One broadcast result as a line: outcome, status, channel, request id, reason or error.

    Args:
        result: The result of ``send_broadcast``.
    """
    channel = getattr(result.notification, "channel_id", "?")
    status = "-" if result.status is None else str(result.status)
    line = (
        f"{outcome_of(result):<8}  {status:>3}  channel {channel}  "
        f"apns-request-id {result.request_id or '-'}"
    )
    if result.reason is not None:
        line += f"  {result.reason}"
    if result.error is not None:
        line += f"  {describe_error(result.error)}"
    return line


def run_broadcast(args: argparse.Namespace, *, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Run ``apnskit broadcast``.

    Args:
        args: Parsed arguments.
        out: Standard output (the result).
        err: Standard error (problems).
        stdin: Standard input (``--payload -``, the password prompt).

    Returns:
        The exit code: 0 accepted, 1 rejected, 2 usage error, 3 no answer.

    Raises:
        UsageError: The command line cannot work.
        CredentialsError: The credentials cannot be used.
        InvalidNotificationError: The broadcast breaks a rule (checked before connecting).
    """
    payload = build_broadcast_payload(args, stdin)
    credentials = load_credentials(args, stdin=stdin, err=err)
    notification = BroadcastNotification(
        _bundle_id(args, credentials),
        args.channel,
        payload,
        priority=args.priority,
        expiration=args.expiration,
        apns_request_id=args.request_id,
    )
    with _client(args, credentials) as client:
        result = client.send_broadcast(notification)
    if args.json:
        print(json.dumps(broadcast_record(result)), file=out)
    else:
        print(format_broadcast(result), file=out)
    if result.accepted:
        return EXIT_OK
    return EXIT_TRANSPORT if result.failed else EXIT_REJECTED
