"""apnskit send --from: streaming a JSONL file, malformed lines, the failed file, progress."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from cli_support import TOPIC, TokenServer, closed_port


def line(token: str, **extra: object) -> str:
    return json.dumps({"token": token, "payload": {"aps": {"alert": "bulk"}}, **extra})


def bulk(apns: TokenServer, source: str, *extra: str) -> list[str]:
    return ["send", *apns.args, "--topic", TOPIC, "--from", source, *extra]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def test_all_accepted_exits_0_and_writes_no_failed_file(apns: TokenServer, cli, tmp_path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text("\n".join(line(t) for t in apns.registered * 4) + "\n")
    stale = tmp_path / "n.jsonl.failed.jsonl"
    stale.write_text("left over from an earlier run\n")
    run = cli(*bulk(apns, str(source)))
    assert run.code == 0, run.err
    assert len(apns.server.received) == 20
    assert "20 notifications in" in run.out
    assert "accepted" in run.out
    assert "nothing to retry" in run.out
    assert not stale.exists()


def test_malformed_lines_are_reported_and_do_not_stop_the_rest(
    apns: TokenServer, cli, tmp_path
) -> None:
    good = apns.registered
    lines = [
        line(good[0]),  # 1
        "{not json",  # 2
        line(apns.gone),  # 3: 410
        "",  # 4: blank, skipped silently
        line("xyz"),  # 5: invalid token
        json.dumps({"token": good[1], "payload": {}, "colour": "red"}),  # 6: unknown key
        "[1, 2]",  # 7: not an object
        json.dumps({"payload": {"aps": {}}}),  # 8: no token
        line(good[2], topic="com.example.app.voip"),  # 9: topic/push type mismatch
        line(good[3]),  # 10
    ]
    source = tmp_path / "n.jsonl"
    source.write_text("\n".join(lines) + "\n")
    run = cli(*bulk(apns, str(source)))
    # Malformed input (2) outranks a rejection (1).
    assert run.code == 2
    for number, text in [
        (2, "not valid JSON"),
        (5, "device_token"),
        (6, "unknown key(s) colour"),
        (7, "a JSON list, not an object"),
        (8, '"token": missing'),
        (9, "topic"),
    ]:
        assert f"{source}:{number}: " in run.err
        assert text in run.err.split(f"{source}:{number}: ")[1].splitlines()[0]
    assert sorted(r.device_token for r in apns.server.received) == sorted(
        [good[0], apns.gone, good[3]]
    )
    summary = run.out
    assert "3 notifications in" in summary
    assert "410 Unregistered" in summary
    assert "malformed" in summary
    assert "7 rejected, failed or malformed line(s) written to" in summary

    failed = read_jsonl(tmp_path / "n.jsonl.failed.jsonl")
    by_line = {r["line"]: r for r in failed}
    assert sorted(by_line) == [2, 3, 5, 6, 7, 8, 9]
    assert by_line[2]["raw"] == "{not json"
    assert by_line[2]["reason"] == "malformed"
    assert by_line[3]["token"] == apns.gone
    assert by_line[3]["payload"] == {"aps": {"alert": "bulk"}}
    assert by_line[3]["status"] == 410
    assert by_line[3]["reason"] == "Unregistered"
    assert by_line[3]["timestamp"].endswith("Z")
    assert by_line[5]["token"] == "xyz"
    assert "device_token" in by_line[5]["error"]
    assert by_line[6]["colour"] == "red"


def test_failed_file_can_be_sent_again(apns: TokenServer, cli, tmp_path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text(line(apns.registered[0]) + "\n" + line(apns.gone) + "\n")
    failed_out = tmp_path / "retry.jsonl"
    first = cli(*bulk(apns, str(source), "--failed-out", str(failed_out)))
    assert first.code == 1
    assert [r["token"] for r in read_jsonl(failed_out)] == [apns.gone]
    # The device came back: a rerun from the failed file (result keys and all) goes through.
    apns.server.register(apns.gone, TOPIC)
    try:
        apns.server.clear_received()
        second = cli(*bulk(apns, str(failed_out)))
        assert second.code == 0, second.err
        assert [r.device_token for r in apns.server.received] == [apns.gone]
    finally:
        apns.server.unregister(apns.gone)


def test_line_values_override_command_line_defaults(apns: TokenServer, cli, tmp_path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text(
        json.dumps({"token": apns.registered[0]})
        + "\n"
        + line(apns.registered[1], priority=5, collapse_id="c1", push_type="alert")
        + "\n"
    )
    run = cli(*bulk(apns, str(source), "--title", "default title", "--priority", "10"))
    assert run.code == 0, run.err
    received = {r.device_token: r for r in apns.server.received}
    first = received[apns.registered[0]]
    assert first.payload == {"aps": {"alert": {"title": "default title"}}}
    assert first.headers["apns-priority"] == "10"
    second = received[apns.registered[1]]
    assert second.payload == {"aps": {"alert": "bulk"}}
    assert second.headers["apns-priority"] == "5"
    assert second.headers["apns-collapse-id"] == "c1"


def test_json_output_has_a_record_per_line_and_summary_on_stderr(
    apns: TokenServer, cli, tmp_path
) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text(line(apns.registered[0]) + "\nnope\n" + line(apns.gone) + "\n")
    run = cli(*bulk(apns, str(source), "--json"))
    records = {r["line"]: r for r in map(json.loads, run.out.splitlines())}
    assert records[1]["outcome"] == "accepted"
    assert records[2]["outcome"] == "malformed"
    assert records[3]["outcome"] == "rejected"
    assert records[3]["reason"] == "Unregistered"
    assert "notifications in" in run.err


def test_reads_stdin_line_by_line(apns: TokenServer, cli, monkeypatch, tmp_path) -> None:
    lines = [line(t) + "\n" for t in apns.registered]

    class LineSource:
        """Iterable like a file; read() would load it whole, which bulk must never do."""

        def __iter__(self):
            return iter(lines)

        def read(self, *args):
            raise AssertionError("the whole input was read at once")

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", LineSource())
    monkeypatch.chdir(tmp_path)
    run = cli(*bulk(apns, "-"))
    assert run.code == 0, run.err
    assert len(apns.server.received) == 5


def test_progress_is_shown_when_asked(apns: TokenServer, cli, tmp_path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text("\n".join(line(t) for t in apns.registered) + "\n")
    run = cli(*bulk(apns, str(source), "--progress"))
    assert run.code == 0
    last = run.err.strip().splitlines()[-1]
    assert "/s" in last
    assert "sent 5" in last
    assert "accepted 5" in last
    assert "rejected 0" in last
    assert "failed 0" in last


def test_no_progress_when_stderr_is_not_a_terminal(apns: TokenServer, cli, tmp_path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text(line(apns.registered[0]) + "\n")
    run = cli(*bulk(apns, str(source)))
    assert run.code == 0
    assert run.err == ""


def test_connection_failure_exits_3_and_keeps_every_line(apns: TokenServer, cli, tmp_path):
    source = tmp_path / "n.jsonl"
    source.write_text("\n".join(line(t) for t in apns.registered) + "\n")
    run = cli(
        "send",
        *apns.auth,
        "--host",
        "127.0.0.1",
        "--port",
        str(closed_port()),
        "--ca-file",
        apns.server.ca_file,
        "--topic",
        TOPIC,
        "--from",
        str(source),
        "--attempts",
        "1",
    )
    assert run.code == 3
    failed = read_jsonl(tmp_path / "n.jsonl.failed.jsonl")
    assert sorted(r["line"] for r in failed) == [1, 2, 3, 4, 5]
    assert all(r["status"] is None and r["error"].startswith("Connect") for r in failed)
    assert "failed" in run.out


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda src: ["--from", str(src.parent / "missing.jsonl")], "--from: cannot read"),
        (lambda src: ["--from", str(src), "--failed-out", str(src)], "must not be the input"),
        (
            lambda src: ["--from", str(src), "--failed-out", str(src.parent / "no" / "x")],
            "--failed-out: cannot write",
        ),
        (
            lambda src: ["--from", str(src), "--apns-id", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
            "--apns-id: only with a single",
        ),
        (lambda src: ["--from", "-", "--payload", "-"], "stdin can feed only one"),
    ],
)
def test_bulk_usage_errors_exit_2(apns: TokenServer, cli, tmp_path, make_args, message) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text(line(apns.registered[0]) + "\n")
    run = cli("send", *apns.args, "--topic", TOPIC, *make_args(source))
    assert run.code == 2
    assert message in run.err
    assert apns.server.received == []


def test_line_without_topic_and_no_default_is_malformed(apns: TokenServer, cli, tmp_path):
    source = tmp_path / "n.jsonl"
    source.write_text(line(apns.registered[0]) + "\n" + line(apns.registered[1], topic=TOPIC))
    run = cli("send", *apns.args, "--from", str(source))
    assert run.code == 2
    assert f"{source}:1: " in run.err
    assert '"topic": missing' in run.err
    assert [r.device_token for r in apns.server.received] == [apns.registered[1]]


def test_non_utf8_line_is_malformed(apns: TokenServer, cli, tmp_path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_bytes(b'{"token": "\xff"}\n' + line(apns.registered[0]).encode() + b"\n")
    run = cli(*bulk(apns, str(source)))
    assert run.code == 2
    assert "not UTF-8" in run.err
    assert len(apns.server.received) == 1


def test_progress_redraws_in_place_on_a_terminal(apns: TokenServer, tmp_path) -> None:
    import io

    from apnskit.cli import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    source = tmp_path / "n.jsonl"
    source.write_text("\n".join(line(t) for t in apns.registered) + "\nbad\n")
    out, err = io.StringIO(), Terminal()
    code = main(bulk(apns, str(source)), stdout=out, stderr=err)
    assert code == 2
    text = err.getvalue()
    assert "\r\x1b[2K" in text  # redrawn in place
    final = text.rsplit("\r\x1b[2K", 1)[1]
    assert final.endswith("\n")
    assert "sent 5  accepted 5  rejected 0  failed 0  malformed 1" in final
    assert f"{source}:6: not valid JSON" in text


def test_ctrl_c_writes_every_unanswered_line_to_the_failed_file(
    apns: TokenServer, cli, tmp_path, monkeypatch
) -> None:
    from apnskit.cli._send import BulkSend

    ids = [str(uuid.uuid4()) for _ in range(20)]
    source = tmp_path / "n.jsonl"
    source.write_text(
        "\n".join(line(t, apns_id=i) for t, i in zip(apns.registered * 4, ids, strict=True)) + "\n"
    )
    # Replies come late, so several notifications are in flight when Ctrl-C arrives.
    apns.server.faults.delay_next(20, 0.2)
    answered: list[int] = []
    record = BulkSend._record

    def interrupt_after_three(self: BulkSend, result) -> None:  # type: ignore[no-untyped-def]
        answered.append(self._pending[id(result.notification)][1])
        record(self, result)
        if len(answered) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(BulkSend, "_record", interrupt_after_three)
    run = cli(*bulk(apns, str(source)))
    monkeypatch.undo()
    assert run.code == 130
    read_up_to = int(run.out.split("interrupted after line ")[1].split(":")[0])
    failed_path = tmp_path / "n.jsonl.failed.jsonl"
    failed = read_jsonl(failed_path)
    # Exactly the lines read and not answered, in line order, each with its original data.
    assert [r["line"] for r in failed] == sorted(set(range(1, read_up_to + 1)) - set(answered))
    assert failed, "nothing was in flight: the test did not exercise the interruption"
    assert all(r["status"] is None and r["reason"] == "interrupted" for r in failed)
    assert [r["apns_id"] for r in failed] == [ids[r["line"] - 1] for r in failed]
    assert (
        f"{len(failed)} line(s) still in flight got no answer and were written to "
        f"{failed_path}" in run.out
    )
    assert f"{len(failed)} rejected, failed, malformed or interrupted line(s)" in run.out

    # A rerun from the failed file sends exactly those and completes them.
    apns.server.faults.clear()
    apns.server.clear_received()
    rerun = cli(*bulk(apns, str(failed_path), "--failed-out", str(tmp_path / "again.jsonl")))
    assert rerun.code == 0, rerun.err
    assert sorted(r.apns_id for r in apns.server.received) == sorted(r["apns_id"] for r in failed)
    assert f"{len(failed)} notifications in" in rerun.out
