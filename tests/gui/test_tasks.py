"""gui/tasks.py: the one background helper — latest wins, cooperative cancel, progress and
partial results on the UI thread in order, lower priority, a thread per task, stop."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from gui.tasks import BACKGROUND_NICE, Task, TaskRunner

TIMEOUT_MS = 10_000


class Gate:
    """Work that waits for the test's go before returning (what it was asked, and whether it was
    cancelled when let go)."""

    def __init__(self):
        self.started = threading.Event()
        self.go = threading.Event()
        self.ran: list = []
        self.threads: list = []

    def __call__(self, request, task: Task):
        self.ran.append(request)
        self.threads.append(threading.current_thread())
        if request == "block":
            self.started.set()
            assert self.go.wait(TIMEOUT_MS / 1000)
        return (request, task.cancelled())


def collect(qtbot, runner) -> list:
    seen: list = []
    for name in ("partial", "progress", "done"):
        getattr(runner, name).connect(lambda v, name=name: seen.append((name, v, threading.current_thread())))
    return seen


def test_the_latest_request_wins_and_the_running_one_is_told(qtbot):
    work = Gate()
    runner = TaskRunner(work, "test-latest")
    seen = collect(qtbot, runner)
    runner.submit("block")
    assert work.started.wait(TIMEOUT_MS / 1000)
    runner.submit("second")           # replaced before it starts: never runs
    runner.submit("third")
    work.go.set()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=TIMEOUT_MS)
    assert work.ran == ["block", "third"]
    assert [(n, v) for n, v, _t in seen] == [("done", ("block", True)), ("done", ("third", False))]
    assert all(t is threading.main_thread() for _n, _v, t in seen)      # delivered on the UI thread
    assert all(t is not threading.main_thread() for t in work.threads)
    assert len(set(work.threads)) == 1                                  # one long-lived thread
    assert runner.stop(TIMEOUT_MS) and not runner.is_running()


def test_drop_stale_delivers_only_the_latest_requests_results(qtbot):
    work = Gate()
    runner = TaskRunner(work, "test-stale", drop_stale=True)
    seen = collect(qtbot, runner)
    runner.submit("block")
    assert work.started.wait(TIMEOUT_MS / 1000)
    runner.submit("newest")
    work.go.set()
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert runner.wait(TIMEOUT_MS)
    qtbot.wait(20)
    assert [(n, v) for n, v, _t in seen] == [("done", ("newest", False))]
    runner.stop()


def test_partial_results_and_progress_arrive_in_order_before_the_result(qtbot):
    def work(n, task):
        for i in range(n):
            task.progress((i, n))
            task.partial(i * i)
        return "all"
    runner = TaskRunner(work, "test-order")
    seen = collect(qtbot, runner)
    runner.submit(5)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1][0] == "done", timeout=TIMEOUT_MS)
    expected = [x for i in range(5) for x in (("progress", (i, 5)), ("partial", i * i))] + [("done", "all")]
    assert [(n, v) for n, v, _t in seen] == expected
    runner.stop()


def test_cancel_reaches_the_work_through_its_flag_and_callbacks(qtbot):
    called = []
    polled = threading.Event()

    def work(_request, task):
        task.on_cancel(lambda: called.append(threading.current_thread()))
        polled.set()
        while not task.cancelled():
            threading.Event().wait(0.005)
        return "stopped"
    runner = TaskRunner(work, "test-cancel", thread_per_task=True)
    seen = collect(qtbot, runner)
    runner.submit(None)
    assert polled.wait(TIMEOUT_MS / 1000) and runner.busy()
    runner.cancel()
    assert called == [threading.main_thread()]                         # at once, on the cancelling thread
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert [(n, v) for n, v, _t in seen] == [("done", "stopped")]     # a cancelled task still reports
    assert not runner.busy()


def test_a_thread_per_task_never_waits_behind_a_blocked_one(qtbot):
    work = Gate()
    runner = TaskRunner(work, "test-per-task", thread_per_task=True, drop_stale=True)
    seen = collect(qtbot, runner)
    runner.submit("block")                         # e.g. a FIFO nobody writes to
    assert work.started.wait(TIMEOUT_MS / 1000)
    runner.submit("file")
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert [(n, v) for n, v, _t in seen] == [("done", ("file", False))]
    assert runner.busy()                           # the blocked one still runs
    work.go.set()
    assert runner.wait(TIMEOUT_MS)
    qtbot.wait(20)
    assert len(seen) == 1                          # its stale result is dropped


def test_stop_waits_for_the_work_reports_nothing_more_and_a_later_submit_starts_afresh(qtbot):
    work = Gate()
    runner = TaskRunner(work, "test-stop")
    seen = collect(qtbot, runner)
    runner.submit("block")
    assert work.started.wait(TIMEOUT_MS / 1000)
    threading.Timer(0.05, work.go.set).start()
    assert runner.stop(TIMEOUT_MS)
    assert not runner.is_running() and not runner.busy()
    qtbot.wait(20)
    assert seen == []
    runner.submit("again")
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert [(n, v) for n, v, _t in seen] == [("done", ("again", False))]
    runner.stop()


def test_an_error_in_the_work_goes_to_the_thread_hook_and_the_runner_goes_on(qtbot, monkeypatch):
    caught = []
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_type))

    def work(request, _task):
        if request == "bad":
            raise ValueError("a bug")
        return request
    runner = TaskRunner(work, "test-error")
    seen = collect(qtbot, runner)
    runner.submit("bad")
    assert runner.wait(TIMEOUT_MS)
    runner.submit("good")
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert caught == [ValueError] and [(n, v) for n, v, _t in seen] == [("done", "good")]
    runner.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread nice values are Linux's")
@pytest.mark.parametrize("per_task", [False, True])
def test_low_priority_lowers_only_the_runners_thread(qtbot, per_task):
    def nice(_request, _task):
        tid = threading.get_native_id()
        with open(f"/proc/self/task/{tid}/comm") as fh:
            name = fh.read().strip()
        return os.getpriority(os.PRIO_PROCESS, tid), name
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for low, expected in ((True, min(19, main + BACKGROUND_NICE)), (False, main)):
        runner = TaskRunner(nice, "test-nice", low_priority=low, thread_per_task=per_task)
        seen = collect(qtbot, runner)
        runner.submit(None)
        qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
        assert seen[0][1] == (expected, "test-nice")
        runner.stop()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main
