"""Notifications: notices written with a run's end, missed releases, the sender.

Against a local webhook receiver (tests/_hooksink.py) and, for email, a local
SMTP server (aiosmtpd; skipped when it is not installed). Crash tests kill a
helper process (tests/_notify_proc.py) with SIGKILL.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from _hooksink import HookSink, hook_sink
from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.execute import execute_request
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.errors import ConfigError, SettingsError
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.notify.late import record_missed
from ddeutil.workflow.notify.notices import MAX_PAYLOAD, Notifier
from ddeutil.workflow.notify.sender import LEASE, Sender, backoff
from ddeutil.workflow.notify.service import NotifyService
from ddeutil.workflow.notify_rule import NotifyRule
from ddeutil.workflow.pipeline import Pipeline
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import RunStore, open_store
from ddeutil.workflow.store.base import Claim, ReleaseKey, TriggerKind
from ddeutil.workflow.store.ends import RunEnd
from ddeutil.workflow.store.outbox import NoticeState
from ddeutil.workflow.store.retention import prune

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
PROC = Path(__file__).with_name("_notify_proc.py")

PIPELINES = """
    flaky:
      type: Pipeline
      params: {fail: str}
      jobs:
        main:
          stages:
            - name: maybe fail
              run: |
                if ${{ params.fail }} == "yes":
                    raise RuntimeError("the token is s3cr3t-token")

    quiet:
      type: Pipeline
      notify: {on: []}
      jobs:
        main:
          stages:
            - name: fail
              run: raise RuntimeError("boom")
"""


@pytest.fixture
def sink() -> Iterator[HookSink]:
    with hook_sink() as served:
        yield served


@pytest.fixture
def notify_settings(make_settings: Callable[..., Settings], sink: HookSink) -> Settings:
    return make_settings(
        WORKFLOW_NOTIFY_WEBHOOK_URL=sink.url,
        WORKFLOW_API_PUBLIC_URL="https://workflow.example.com/",
        WORKFLOW_NOTIFY_MAX_ATTEMPTS="3",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield opened
    opened.close()


def _execute(  # noqa: PLR0917 - a test helper
    store: RunStore,
    settings: Settings,
    loader: Loader,
    clock: FakeClock,
    pipeline: str,
    run_id: str,
    fail: bool,
) -> Status:
    params = {"fail": "yes" if fail else "no"} if pipeline == "flaky" else {}
    store.create_run(
        run_id=run_id, pipeline=pipeline, trigger=TriggerKind.MANUAL, params=params, now=clock.now()
    )
    result = execute_request(
        RunRequest(run_id=run_id, pipeline=pipeline, params=params),
        loader.get(pipeline),
        store=store,
        settings=settings,
        masker=Masker(frozenset({"s3cr3t-token"})),
        clock=clock,
        cancel=CancelToken(),
        loader=loader,
    )
    assert result is not None
    clock.advance(60)
    return result.status


@pytest.fixture
def run(
    store: RunStore,
    notify_settings: Settings,
    write_conf: Callable[[str, str], Path],
    clock: FakeClock,
) -> Callable[[str, str, bool], Status]:
    write_conf("pipes.yml", PIPELINES)
    loader = Loader.from_settings(notify_settings)

    def _run(pipeline: str, run_id: str, fail: bool) -> Status:
        return _execute(store, notify_settings, loader, clock, pipeline, run_id, fail)

    return _run


def _sender(store: RunStore, settings: Settings, clock: FakeClock, owner: str = "s1") -> Sender:
    return Sender(store, settings, owner=owner, clock=clock)


# -- failure, recovered: written with the run's end, sent once --------------------------


def test_a_failed_run_is_notified_once_with_a_dedupe_key_and_a_masked_error(
    run: Callable[[str, str, bool], Status],
    store: RunStore,
    notify_settings: Settings,
    clock: FakeClock,
    sink: HookSink,
) -> None:
    assert run("flaky", "r1", True) is Status.FAILED
    sender = _sender(store, notify_settings, clock)
    assert sender.send_due() == 1
    assert sender.send_due() == 0  # sent rows are never claimed again
    (hit,) = sink.wait_for(1)
    body = hit.body
    assert hit.headers["Idempotency-Key"] == body["id"] == "r1:failure:webhook"
    assert hit.headers["Content-Type"] == "application/json"
    assert body["event"] == "failure"
    assert (body["pipeline"], body["run_id"], body["status"]) == ("flaky", "r1", "FAILED")
    assert "RuntimeError" in body["error"]
    assert "s3cr3t-token" not in json.dumps(body)
    assert body["link"] == "https://workflow.example.com/ui/runs/r1"
    assert body["release"] is None
    (row,) = store.notices()
    assert (row.state, row.attempts) == (NoticeState.SENT, 1)
    assert sender.stats.sent == 1


def test_success_after_failure_is_told_recovered_and_other_ends_tell_nothing(
    run: Callable[[str, str, bool], Status],
    store: RunStore,
    notify_settings: Settings,
    clock: FakeClock,
    sink: HookSink,
) -> None:
    assert run("flaky", "r1", False) is Status.SUCCESS  # first run: nothing to recover from
    assert run("flaky", "r2", True) is Status.FAILED
    assert run("flaky", "r3", False) is Status.SUCCESS  # recovered
    assert run("flaky", "r4", False) is Status.SUCCESS  # nothing
    assert run("quiet", "q1", True) is Status.FAILED  # notify: {on: []}
    sender = _sender(store, notify_settings, clock)
    assert sender.send_due() == 2
    events = sorted((h.body["run_id"], h.body["event"]) for h in sink.wait_for(2))
    assert events == [("r2", "failure"), ("r3", "recovered")]


def test_a_500_is_retried_after_the_backoff_with_the_same_key(
    run: Callable[[str, str, bool], Status],
    store: RunStore,
    notify_settings: Settings,
    clock: FakeClock,
    sink: HookSink,
) -> None:
    sink.answers.extend([500, 503])
    assert run("flaky", "r1", True) is Status.FAILED
    sender = _sender(store, notify_settings, clock)
    assert sender.send_due() == 0
    (row,) = store.notices()
    assert (row.state, row.attempts, row.last_error) == (
        NoticeState.PENDING,
        1,
        "webhook answered HTTP 500",
    )
    assert row.due == clock.now() + timedelta(seconds=backoff(1))
    assert sender.send_due() == 0  # not due yet
    clock.advance(backoff(1))
    assert sender.send_due() == 0  # 503: retried again, after twice the wait
    clock.advance(backoff(2) - 1)
    assert sender.send_due() == 0
    clock.advance(1)
    assert sender.send_due() == 1
    hits = sink.wait_for(3)
    assert len({h.headers["Idempotency-Key"] for h in hits}) == 1
    assert (sender.stats.failed, sender.stats.sent, sender.stats.given_up) == (2, 1, 0)
    assert [backoff(n) for n in (1, 2, 3, 20)] == [5.0, 10.0, 20.0, 900.0]


def test_a_notice_is_given_up_after_the_attempts_or_at_once_for_a_4xx(
    run: Callable[[str, str, bool], Status],
    store: RunStore,
    notify_settings: Settings,
    clock: FakeClock,
    sink: HookSink,
) -> None:
    sink.answers.extend([500, 500, 500, 404])
    assert run("flaky", "r1", True) is Status.FAILED
    sender = _sender(store, notify_settings, clock)
    for _ in range(3):  # WORKFLOW_NOTIFY_MAX_ATTEMPTS=3
        sender.send_due()
        clock.advance(timedelta(hours=1))
    (row,) = store.notices()
    assert (row.state, row.attempts) == (NoticeState.DEAD, 3)
    assert run("flaky", "r2", True) is Status.FAILED
    sender.send_due()  # 404: permanent
    dead = {r.key: r for r in store.notices()}["r2:failure:webhook"]
    assert (dead.state, dead.attempts, dead.last_error) == (
        NoticeState.DEAD,
        1,
        "webhook answered HTTP 404",
    )
    assert sender.stats.given_up == 2


def test_an_unreachable_receiver_never_blocks_the_run(
    store: RunStore,
    make_settings: Callable[..., Settings],
    write_conf: Callable[[str, str], Path],
    clock: FakeClock,
) -> None:
    settings = make_settings(WORKFLOW_NOTIFY_WEBHOOK_URL="http://127.0.0.1:9/closed")
    write_conf("pipes.yml", PIPELINES)
    loader = Loader.from_settings(settings)
    assert _execute(store, settings, loader, clock, "flaky", "r1", True) is Status.FAILED
    record = store.get_run("r1")
    assert record is not None
    assert record.status is Status.FAILED
    sender = _sender(store, settings, clock)
    assert sender.send_due() == 0
    (row,) = store.notices()
    assert row.state is NoticeState.PENDING
    assert row.last_error is not None
    assert row.last_error.startswith("webhook unreachable")


# -- crashes ------------------------------------------------------------------------------


def _proc(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(PROC), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail("helper process gave no output")
    line = proc.stdout.readline().decode().strip()
    if not line:
        proc.kill()
        pytest.fail(f"helper process exited: {proc.communicate()[1].decode()}")
    return line


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_a_kill_9_after_the_end_is_recorded_sends_the_notice_exactly_once(
    tmp_path: Path, notify_settings: Settings, clock: FakeClock, sink: HookSink
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    try:
        store.create_run(run_id="r1", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0)
        proc = _proc("finish", url, sink.url)
        assert _line(proc) == "finished"
        _kill(proc)  # the run's end and its outbox row committed; nothing sent
        assert sink.hits == []
        first, second = (
            _sender(store, notify_settings, clock),
            _sender(store, notify_settings, clock, "s2"),
        )
        assert first.send_due() + second.send_due() == 1
        (hit,) = sink.wait_for(1)
        assert hit.body["id"] == "r1:failure:webhook"
    finally:
        store.close()


def test_a_kill_9_between_delivery_and_its_mark_delivers_again_with_the_same_key(
    tmp_path: Path, notify_settings: Settings, clock: FakeClock, sink: HookSink
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    try:
        store.create_run(run_id="r1", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0)
        notices = Notifier(notify_settings, Masker()).run_end(
            None, run_id="r1", pipeline="p", status=Status.FAILED, error="x", release=None, ended=T0
        )
        assert store.finish("r1", status=Status.FAILED, now=T0, notices=notices)
        proc = _proc("send", url, sink.url)
        assert _line(proc) == "delivered"
        _kill(proc)  # delivered, never marked sent: the row stays leased to the dead sender
        clock.set(T0)
        sender = _sender(store, notify_settings, clock)
        assert sender.send_due() == 0  # its lease still holds
        clock.advance(LEASE)
        assert sender.send_due() == 1  # at least once: delivered again
        assert sender.send_due() == 0
        hits = sink.wait_for(2)
        assert len(hits) == 2
        assert {h.headers["Idempotency-Key"] for h in hits} == {"r1:failure:webhook"}
        (row,) = store.notices()
        assert (row.state, row.attempts) == (NoticeState.SENT, 2)
    finally:
        store.close()


# -- missed releases ---------------------------------------------------------------------


def test_a_release_not_started_late_after_its_time_is_told_missed_once(
    store: RunStore, notify_settings: Settings, clock: FakeClock, sink: HookSink
) -> None:
    at = clock.now()
    key = ReleaseKey("nightly", "0 1 * * *@UTC", at)
    other = ReleaseKey("hush", "0 1 * * *@UTC", at)
    store.claim_many([Claim(key, "m1", {}, at), Claim(other, "m2", {}, at)], now=at)
    notifier = Notifier(notify_settings, Masker())
    rules = {"nightly": NotifyRule(late_after=60), "hush": NotifyRule(on=("failure",))}

    def targets_of(pipeline: str) -> object:
        return notifier.targets(rules.get(pipeline))

    service = NotifyService(
        store,
        _sender(store, notify_settings, clock),
        clock=clock,
        notifier=notifier,
        targets_of=targets_of,  # type: ignore[arg-type]
    )
    clock.advance(59)
    service.beat()
    assert store.notices() == []
    clock.advance(1)
    service.beat()
    service.beat()  # every beat looks again; the dedupe key keeps one row
    (hit,) = sink.wait_for(1)
    assert hit.body["event"] == "missed"
    assert hit.body["id"] == "m1:missed:webhook"
    assert hit.body["release"] == {"schedule": "0 1 * * *@UTC", "at": at.isoformat()}
    assert hit.body["status"] == "PENDING"
    assert "not started 60s after its release time" in hit.body["error"]
    assert len(store.notices()) == 1
    # A started run is not missed.
    assert store.mark_running("m2", now=clock.now())
    assert record_missed(store, notifier, targets_of, now=clock.now()) == 0  # type: ignore[arg-type]


# -- bounds, settings, the pipeline key ----------------------------------------------------


def test_payloads_are_masked_and_capped(notify_settings: Settings) -> None:
    notifier = Notifier(notify_settings, Masker(frozenset({"hunter2"})))
    huge = ("\U0001f600" * 50_000) + " hunter2"
    (notice,) = notifier.run_end(
        None,
        run_id="r",
        pipeline="p" * 10_000,
        status=Status.FAILED,
        error=huge,
        release=None,
        ended=T0,
    )
    assert len(notice.payload) <= MAX_PAYLOAD
    body = json.loads(notice.payload)
    assert len(body["pipeline"]) == 512
    assert "hunter2" not in notice.payload
    (masked,) = notifier.run_end(
        None,
        run_id="r",
        pipeline="p",
        status=Status.FAILED,
        error="pw hunter2",
        release=None,
        ended=T0,
    )
    assert json.loads(masked.payload)["error"] == "pw ***"
    assert (
        notifier.run_end(
            None,
            run_id="r",
            pipeline="p",
            status=Status.CANCELLED,
            error=None,
            release=None,
            ended=T0,
        )
        == ()
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKFLOW_NOTIFY_WEBHOOK_URL", "file:///etc/passwd"),
        ("WORKFLOW_NOTIFY_WEBHOOK_URL", "https://"),
        ("WORKFLOW_NOTIFY_ON", "failure,sometimes"),
        ("WORKFLOW_NOTIFY_EMAIL_TO", "ops@example.com, not-an-address"),
        ("WORKFLOW_NOTIFY_SMTP_URL", "http://mail.example.com"),
        ("WORKFLOW_NOTIFY_LATE_AFTER", "-1"),
        ("WORKFLOW_API_PUBLIC_URL", "javascript:alert(1)"),
    ],
)
def test_a_bad_notify_setting_names_the_variable(
    make_settings: Callable[..., Settings], variable: str, value: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        make_settings(**{variable: value})


def test_a_bad_secret_setting_is_named_without_its_value(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsError, match="WORKFLOW_NOTIFY_WEBHOOK_URL") as caught:
        make_settings(WORKFLOW_NOTIFY_WEBHOOK_URL="ftp://user:t0ken@example.com/x")
    assert "t0ken" not in str(caught.value)
    assert caught.value.value == "ftp://***"


def test_notify_settings_parse(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        WORKFLOW_NOTIFY_ON="Missed, failure",
        WORKFLOW_NOTIFY_EMAIL_TO="a@example.com,b@example.com",
        WORKFLOW_NOTIFY_SMTP_URL="smtp://user:pw@127.0.0.1:2525",
    )
    assert settings.notify_on == ("missed", "failure")
    assert settings.notify_email_to == ("a@example.com", "b@example.com")
    assert make_settings(WORKFLOW_NOTIFY_ON="none").notify_on == ()
    defaults = make_settings()
    assert defaults.notify_on == ("failure", "recovered", "missed")
    assert defaults.notify_late_after == 300
    assert "pw" not in repr(settings)


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ("{webhook: 'ftp://example.com/x'}", "http:// or https://"),
        ("{on: [failure, sometimes]}", "notify.on"),
        ("{email: [nobody]}", "not an email address"),
        ("{late_after: 0}", "late_after"),
        ("{typo: 1}", "typo"),
    ],
)
def test_a_bad_notify_key_is_refused_at_load(
    settings: Settings, write_conf: Callable[[str, str], Path], notify: str, message: str
) -> None:
    write_conf("p.yml", f"p:\n  type: Pipeline\n  notify: {notify}\n")
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_loader("p", loader=Loader.from_settings(settings), settings=settings)


def test_a_pipeline_rule_overrides_the_settings(notify_settings: Settings) -> None:
    notifier = Notifier(notify_settings, Masker())
    default = notifier.targets(None)
    assert default.webhook == notify_settings.notify_webhook_url
    assert default.late_after == 300
    rule = NotifyRule.model_validate(
        {"on": ["missed"], "webhook": "https://hooks.example.com/x", "late_after": 5}
    )
    mine = notifier.targets(rule)
    assert (mine.events, mine.webhook, mine.late_after) == (
        frozenset({"missed"}),
        "https://hooks.example.com/x",
        5,
    )
    assert not mine.wants("failure")
    assert NotifyRule.of_template({"notify": {"on": "bad"}}) is None


# -- journal, retention ----------------------------------------------------------------------


def test_a_journaled_end_keeps_its_notices(notify_settings: Settings) -> None:
    notices = Notifier(notify_settings, Masker()).run_end(
        None, run_id="r1", pipeline="p", status=Status.FAILED, error="x", release=None, ended=T0
    )
    end = RunEnd("r1", Status.FAILED, T0, None, (), "x", None, notices)
    again = RunEnd.from_line(json.loads(end.to_line("store")))
    assert again == end


def test_retention_prunes_sent_notices_with_the_runs(
    store: RunStore, notify_settings: Settings, clock: FakeClock, sink: HookSink
) -> None:
    notifier = Notifier(notify_settings, Masker())
    at = ReleaseKey("p", "x", T0)
    pending = notifier.missed(notifier.targets(None), run_id="a", pipeline="p", release=at, now=T0)
    sent = notifier.missed(notifier.targets(None), run_id="b", pipeline="p", release=at, now=T0)
    store.add_notices([*sent], now=T0)
    assert _sender(store, notify_settings, clock).send_due() == 1
    store.add_notices([*pending], now=T0)
    report = prune(store, before=T0 + timedelta(days=1), log_dir=None)
    assert report.notices == 1
    assert [n.key for n in store.notices()] == ["a:missed:webhook"]


# -- email -----------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[bytes]]]:
    """A local SMTP server (aiosmtpd) keeping each mail's bytes: (port, mails)."""
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    handlers = pytest.importorskip("aiosmtpd.handlers")
    got: list[bytes] = []

    class Keep(handlers.Sink):  # type: ignore[misc, name-defined]
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            got.append(envelope.original_content)  # type: ignore[attr-defined]
            return "250 OK"

    with socket.socket() as probe:  # a free port (the controller connects to it to start)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = controller_mod.Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, got
    finally:
        controller.stop()


def _mail_failure(store: RunStore, settings: Settings, clock: FakeClock) -> Sender:
    store.create_run(run_id="r1", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0)
    notices = Notifier(settings, Masker()).run_end(
        None, run_id="r1", pipeline="p", status=Status.FAILED, error="boom", release=None,
        ended=T0,
    )  # fmt: skip
    assert [n.channel for n in notices] == ["email"]  # no webhook set
    assert store.finish("r1", status=Status.FAILED, now=T0, notices=notices)
    sender = _sender(store, settings, clock)
    sender.send_due()
    return sender


def test_a_failure_is_mailed_through_the_smtp_server(
    store: RunStore,
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    smtp_server: tuple[int, list[bytes]],
) -> None:
    from email import message_from_bytes

    port, got = smtp_server
    settings = make_settings(
        WORKFLOW_NOTIFY_EMAIL_TO="ops@example.com,dev@example.com",
        WORKFLOW_NOTIFY_SMTP_URL=f"smtp://127.0.0.1:{port}",
        WORKFLOW_NOTIFY_EMAIL_FROM="wf@example.com",
    )
    assert _mail_failure(store, settings, clock).stats.sent == 1
    (raw,) = got
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[workflow] p: failure"
    assert mail["From"] == "wf@example.com"
    assert mail["To"] == "ops@example.com, dev@example.com"
    text = mail.get_payload(decode=True)
    assert isinstance(text, bytes)
    body = json.loads(text)
    assert (body["id"], body["error"]) == ("r1:failure:email", "boom")


def test_a_password_is_never_sent_to_a_mail_server_without_tls(
    store: RunStore,
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    smtp_server: tuple[int, list[bytes]],
) -> None:
    port, got = smtp_server
    settings = make_settings(
        WORKFLOW_NOTIFY_EMAIL_TO="ops@example.com",
        WORKFLOW_NOTIFY_SMTP_URL=f"smtp://user:pw@127.0.0.1:{port}",
    )
    assert _mail_failure(store, settings, clock).stats.given_up == 1
    (row,) = store.notices()
    assert row.state is NoticeState.DEAD
    assert row.last_error is not None
    assert "no TLS" in row.last_error
    assert got == []


# -- failures recorded by others --------------------------------------------------------------


def test_a_run_failed_by_a_restart_is_told_once_and_a_noticed_end_is_not_told_again(
    store: RunStore, notify_settings: Settings, clock: FakeClock, sink: HookSink
) -> None:
    notifier = Notifier(notify_settings, Masker(frozenset({"hunter2"})))
    for run_id in ("lost", "ended"):
        store.create_run(
            run_id=run_id, pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=clock.now()
        )
        assert store.mark_running(run_id, now=clock.now())
    notices = notifier.run_end(
        None, run_id="ended", pipeline="p", status=Status.FAILED, error="x", release=None,
        ended=clock.now(),
    )  # fmt: skip
    assert store.finish("ended", status=Status.FAILED, now=clock.now(), notices=notices)
    # A start-up closes the run its crashed executor left RUNNING: no notice written with it.
    reason = "interrupted: the process died (hunter2)"
    assert store.fail_interrupted(now=clock.now(), reason=reason) == ["lost"]
    service = NotifyService(
        store,
        _sender(store, notify_settings, clock),
        clock=clock,
        notifier=notifier,
        targets_of=lambda pipeline: notifier.targets(None),
        sweep_window=timedelta(days=1),
    )
    service.beat()
    service.beat()  # the next sweep is SWEEP_EVERY later
    clock.advance(timedelta(minutes=5))
    service.beat()  # swept again: the keys exist, nothing new
    hits = sink.wait_for(2)
    assert sorted(h.body["id"] for h in hits) == ["ended:failure:webhook", "lost:failure:webhook"]
    lost = next(h.body for h in hits if h.body["run_id"] == "lost")
    assert lost["error"] == "interrupted: the process died (***)"
    assert len(store.notices()) == 2


def test_a_receiver_that_hangs_up_is_a_failure_to_retry() -> None:
    import threading

    from ddeutil.workflow.notify.channels import DeliveryError, post_webhook

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def hang_up() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
        with pytest.raises(DeliveryError, match="webhook unreachable") as caught:
            post_webhook(url, b"{}", key="k", timeout=5)
        assert not caught.value.permanent
    finally:
        thread.join(timeout=5)
        server.close()
