"""ShardHost: one shard of a cluster, the unit a Ray actor holds (the same class runs in-process).

A shard owns the models whose names hash to it (:func:`shard_of`, a stable hash: the same
on every node and in every process). It runs today's service as is (``create_app``: registry,
workers, micro-batching, durability) on an event loop of its own, with its log stream
``shard-{index}`` in PostgreSQL and its checkpoints in ``{state_dir}/shard-{index}``, and
recovers in its constructor: once it returns, the shard is ready (or raised why not).

**Standby.** A shard can run twice: its owner, and a warm *standby* (``standby=True``) that has
imported everything, loaded the compiled kernels and taken one optimizer step on a throwaway model
(torch imports ``torch._dynamo`` there), but holds no model and takes no epoch. ``promote()`` makes
it the owner: it takes the stream's next epoch, which fences the owner it replaces (its next
append is refused), and recovers (newest checkpoint, then the log), in about a second where a
fresh process takes five to seven. An owner whose append is refused because a newer epoch owns
the stream steps down to standby (``handle`` then answers 503 with ``x-tbptt-role: standby``, so
a front asks the partner). A cluster's front promotes a shard's standby when its owner dies
(:mod:`tbptt_service.host.ray_shards`).

Requests come in batches (``handle``): the front coalesces what arrives for a shard within a few
milliseconds into one call, and the shard runs them concurrently through the app, so they meet
in its micro-batches as they would in one process: the same answers, status codes and error
bodies. Each call carries an idempotency key: a call retried with a key already answered (a
front that lost the reply, Ray re-executing a task) gets the first answers back and applies
nothing twice. Keys are remembered in memory, so this holds within an incarnation; across a
restart, timestamped observations are recognised by the service's own idempotency (a repeated
``(series, timestamp, value)`` answers its first result).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson

from tbptt_service.host.shard_app import ForwardedRequest, ForwardedResponse, ShardApp
from tbptt_service.host.startup_marks import StartupMarks
from tbptt_service.settings import Settings

KEYS_REMEMBERED = 10_000
# The answers remembered hold at most this many bytes of bodies: 4,000 GETs of /openapi.json (40 KB each)
# grew an owner by 180 MB when only their count was bounded (a hostile test, session 36). A front retries
# a call within a minute, so only the newest answers are ever asked for again.
ANSWER_BYTES_REMEMBERED = 64 * 1024 * 1024
ROLE_HEADER = "x-tbptt-role"  # on a 503 of a shard that does not own its stream: "standby" or "promoting"
FIRST_PAUSE_S, LAST_PAUSE_S = 0.5, 10.0  # the back-off between recovery attempts
# An owner asks the database this often whether a newer epoch owns its stream: one that appends
# nothing learns it no other way, and answered reads from its stale models (a hostile test, session 36:
# three GETs over 3 s after another incarnation's acknowledged write).
EPOCH_CHECK_S = 1.0
logger = logging.getLogger("tbptt_service.host.shard")


def shard_of(model: str, shards: int) -> int:
    """The shard that owns ``model``: a stable hash (sha256), never Python's per-process ``hash``.

    >>> [shard_of(name, 4) for name in ("default", "m1", "m2", "m3")]
    [1, 1, 1, 3]
    """
    return int.from_bytes(hashlib.sha256(model.encode()).digest()[:8], "big") % shards


def shard_settings(base: Settings, index: int, shards: int) -> Settings:
    """The settings of shard ``index``: its own log stream and checkpoint directory, and the model
    ``default`` created only by the shard that owns the name."""
    return base.model_copy(
        update={
            "log_stream": f"shard-{index}",
            "state_dir": Path(base.state_dir) / f"shard-{index}",
            "create_default_model": base.create_default_model and shard_of("default", shards) == index,
            "lock_state_dir": False,  # its owner and its standby share the directory; the log's epochs fence
        }
    )


class ShardHost:
    """Shard ``index`` of ``shards``, built from ``settings`` (a dict of Settings fields: it crosses
    process boundaries). The constructor makes the first recovery attempt; when it fails, the
    shard answers 503 with the reason and retries in the background (``ready()`` says when)."""

    def __init__(self, index: int, shards: int, settings: dict[str, Any], standby: bool = False) -> None:
        self.startup = StartupMarks()  # where a restart's time goes: read by the fault tests
        self.startup.mark("constructor" + (" (standby)" if standby else ""))
        self.index, self.shards = index, shards
        self.given_settings = dict(settings)  # as the front that created it handed them (a restart: the same)
        self.settings = shard_settings(Settings(**settings), index, shards)
        self.incarnations = 0  # apps started (recovered) so far: 1 + the restarts in place
        self.attempts = 0  # recovery attempts so far, failed ones included
        self._serving: ShardApp | None = None
        self._down = "starting"  # why nothing is served, while _serving is None
        self._answers: OrderedDict[str, Future[list[ForwardedResponse]]] = OrderedDict()
        self._answers_lock = threading.Lock()
        self._answer_bytes: dict[str, int] = {}  # the body bytes of each answer remembered, once answered
        self._answer_bytes_total = 0
        self._mending: threading.Thread | None = None
        self._mending_lock = threading.Lock()
        self._retiring: list[threading.Thread] = []  # each closes an app that stepped down; close() waits for them
        self._closing = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"shard-{index}-loop", daemon=True)
        self._thread.start()
        self._promoting = threading.Lock()
        self.role = "standby" if standby else "owner"  # or "promoting"
        self.warmed = threading.Event()  # a standby's warm-up is done
        if standby:
            self._down = "a standby: it serves once promoted"
            threading.Thread(target=self._warm, name=f"shard-{index}-warm", daemon=True).start()
        elif not self._start_incarnation():
            self._mend(broken=None)
        threading.Thread(target=self._watch_epoch, name=f"shard-{index}-epoch", daemon=True).start()

    def _watch_epoch(self) -> None:
        """Every ``EPOCH_CHECK_S``: an owner whose stream a newer epoch owns steps down (without it, one
        that appended nothing kept answering reads from its models until its next write)."""
        while not self._closing.wait(EPOCH_CHECK_S):
            serving = self._serving
            if serving is not None and self.role == "owner" and serving.enter():
                try:
                    serving.ask_epoch()
                finally:
                    serving.leave()
                self._heed_log(serving)  # fenced: steps down; its connection lost: restarts in place

    def _warm(self) -> None:
        """What a fresh process pays on its first recovery, paid ahead: the app's imports, the compiled
        kernels and ``torch._dynamo`` (imported by the optimizer's first step), on a throwaway model."""
        try:
            from tbptt_online import Forecaster, ForecasterConfig
            from tbptt_service.api.app import create_app  # noqa: F401  (imported for the promotion)

            throwaway = Forecaster(ForecasterConfig(hidden_size=4))
            for t in range(3):
                throwaway.observe("warm", float(t))  # a young series updates at every value
            self.startup.mark("standby warmed")
        except Exception:  # a standby that could not warm up is still a standby: it pays on promotion
            logger.exception("shard %d: the standby's warm-up failed", self.index)
        finally:
            self.warmed.set()

    def promote(self) -> bool:
        """Make this shard the owner of its stream (idempotent): take the next epoch, which fences the
        owner it replaces, and recover. True once it serves; False when the recovery failed (it is
        then retried in the background, as a constructor's failed attempt is)."""
        with self._promoting:
            serving = self._serving
            if serving is not None and serving.log_superseded is None:
                return True
            self.role = "promoting"
            self.startup.mark("promotion")
            if self._start_incarnation():
                self.role = "owner"
                return True
            # The owner now, whose recovery is retried in the background: its 503s say why and carry no
            # role, so a front answers them as they are. Left "promoting", a front took them for a
            # promotion under way and retried for a minute (every request of the shard hung while the
            # database was down, and the README's "its recovery failed" never reached a client).
            self.role = "owner"
            self._mend(broken=None)
            return False

    def _step_down(self, superseded: ShardApp) -> None:
        """An owner whose stream a newer epoch owns: close its app (on a thread: ``handle`` returns
        now) and become a standby."""
        with self._answers_lock:
            if self._serving is not superseded or self._closing.is_set():  # closing: close() closes it
                return
            self._serving = None
            self.role = "standby"
            self._down = f"a standby: {superseded.log_superseded}"
            # Started here, under the lock close() takes before it stops the loop, and joined there: a close
            # that came first stopped the loop under this thread (RuntimeError 'Event loop is closed' in the
            # thread, the app never closed: a fault test's teardown on a loaded machine, session 63).
            retiring = threading.Thread(target=self._run, args=(superseded.close(),), daemon=True)
            self._retiring = [*(t for t in self._retiring if t.is_alive()), retiring]
            retiring.start()
        logger.warning("shard %d: stepping down to standby (%s)", self.index, superseded.log_superseded)

    @property
    def app(self) -> Any:
        """The app serving now (``RuntimeError`` while none is)."""
        serving = self._serving
        if serving is None:
            raise RuntimeError(f"shard {self.index} is not serving: {self._down}")
        return serving.app

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _start_incarnation(self) -> bool:
        """One recovery attempt: True when a new app serves."""
        self.attempts += 1
        candidate = ShardApp(self.index, self.settings)
        self.startup.mark(f"attempt {self.attempts}: app imported and built")
        try:
            self._run(candidate.start(on_step=lambda step: self.startup.mark(f"attempt {self.attempts}: {step}")))
        except Exception as error:
            self._down = f"its recovery failed (attempt {self.attempts}): {error}"
            logger.error("shard %d: %s", self.index, self._down)
            return False
        self.incarnations += 1
        self._serving = candidate
        self.role = "owner"
        return True

    def _mend(self, broken: ShardApp | None) -> None:
        """Start the background mending (once at a time): wait for the log's database when ``broken``
        is the app whose log broke, restart in place, and retry recovery until it succeeds."""
        with self._mending_lock:
            if self._closing.is_set() or (self._mending is not None and self._mending.is_alive()):
                return  # (closing: no mending starts once close() has joined the last one)
            if broken is not None and self._serving is not broken:  # a call that ran on an app already retired
                return
            if broken is not None:
                logger.error("shard %d: %s; restarting once the database answers", self.index, broken.log_broken)
                self.startup.mark(f"restart in place: {broken.log_broken}")  # why: read by the fault tests
            self._mending = threading.Thread(target=self._mend_now, args=(broken,), name=f"shard-{self.index}-mend")
            self._mending.daemon = True
            self._mending.start()

    def _mend_now(self, broken: ShardApp | None) -> None:
        pause = FIRST_PAUSE_S
        if broken is not None:
            from tbptt_service.storage.postgres_log import unreachable

            assert self.settings.log_url is not None  # only a PostgreSQL log breaks this way
            while (why := unreachable(self.settings.log_url)) is not None:  # reads go on meanwhile
                logger.warning("shard %d: its log is unreachable (%s); retry in %.1f s", self.index, why, pause)
                if self._closing.wait(pause):
                    return
                pause = min(pause * 2, LAST_PAUSE_S)
            with self._answers_lock:
                if self._serving is not broken:  # retired meanwhile (closed, or stepped down)
                    return
                self._down = "restarting after its log connection was lost"
                self._serving = None
            logger.warning("shard %d: the log's database answers again; restarting in place", self.index)
            self._run(broken.close())
            pause = FIRST_PAUSE_S
        else:  # the constructor's attempt failed a moment ago
            if self._closing.wait(pause):
                return
            pause = min(pause * 2, LAST_PAUSE_S)
        while not self._start_incarnation():
            logger.warning("shard %d: recovery retried in %.1f s", self.index, pause)
            if self._closing.wait(pause):
                return
            pause = min(pause * 2, LAST_PAUSE_S)

    def ready(self) -> bool:
        serving = self._serving
        return serving is not None and bool(getattr(serving.app.state, "ready", False))

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the shard serves within ``timeout_s`` (a test's wait for the background recovery)."""
        deadline = time.monotonic() + timeout_s
        while not self.ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.ready()

    def settings_given(self) -> dict[str, Any]:
        """The settings this shard was built from, as the front that created it handed them: a later
        front compares them with its own (a detached actor keeps them for good)."""
        return self.given_settings

    def current_role(self) -> str:
        """ "owner", "standby" or "promoting" (a fault test finds the owner's process by it)."""
        return self.role

    def pid(self) -> int:
        """The process the shard runs in (a fault test kills it)."""
        return os.getpid()

    def handle(self, key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        """Answer ``requests`` (run concurrently through the app), or the answers already given to
        ``key``. Thread-safe: calls from several fronts run at once."""
        with self._answers_lock:
            answer = self._answers.get(key)
            serving = self._serving
            if answer is None and serving is not None and not serving.enter():
                serving = None  # it is being retired (closing): treated as not serving
            if answer is None and serving is None:  # not remembered under the key: nothing ran, a retry runs it
                return [self._unavailable() for _ in requests]
            owner = answer is None
            if owner:
                answer = self._answers[key] = Future()
                while len(self._answers) > KEYS_REMEMBERED:
                    self._forget_oldest()
        assert answer is not None
        if owner:
            assert serving is not None
            failure: BaseException | None = None
            try:
                responses = self._run(serving.handle_all(key, requests))
            except BaseException as error:
                failure = error
            finally:
                serving.leave()  # its close, if under way, waits for this
            superseded = self._heed_log(serving)
            if superseded:
                # A standby was promoted while this call ran: what it refused (500, nothing applied) and
                # what it applied before (journaled with its key) the new owner answers, so the whole call
                # is sent there, with the same key (the 503s of a standby, now that this one stepped down).
                # Also when a request's refusal escaped the app (a create's FencedWriter): that failed the
                # whole call with a 500 until session 36 (a hostile test).
                answer.set_result([self._unavailable() for _ in requests])
            elif failure is not None:
                with self._answers_lock:
                    if self._answers.get(key) is answer:  # nothing answered (no bytes counted): a retry runs it
                        self._answers.pop(key)
                answer.set_exception(failure)
            else:
                answer.set_result(responses)
            if failure is None or superseded:
                self._remember_size(key, answer)
        return answer.result()

    def _heed_log(self, serving: ShardApp) -> bool:
        """After ``serving`` used its log: step down if a newer epoch owns the stream (True), or mend it
        if its connection was lost."""
        if serving.log_superseded is not None:
            self._step_down(serving)
            return True
        if serving.log_broken is not None:
            self._mend(broken=serving)
        return False

    def _remember_size(self, key: str, answer: Future[list[ForwardedResponse]]) -> None:
        """Count the bodies of ``key``'s answer ``answer`` (when it is still the one remembered under
        ``key``: a retry may have run the key again after it was forgotten), then forget the oldest
        answered calls while the bodies remembered pass ``ANSWER_BYTES_REMEMBERED``: never a call still
        running (a retry of it would run it twice), nor this one."""
        with self._answers_lock:
            if self._answers.get(key) is not answer or key in self._answer_bytes:
                return
            size = sum(len(r.body) for r in answer.result())
            self._answer_bytes[key] = size
            self._answer_bytes_total += size
            while self._answer_bytes_total > ANSWER_BYTES_REMEMBERED:
                oldest = next((k for k in self._answer_bytes if k != key), None)  # in insertion order: answered
                if oldest is None:
                    break
                self._forget(oldest)

    def _forget_oldest(self) -> None:
        """Under ``_answers_lock``: the oldest answer remembered goes, with its bytes."""
        oldest = next(iter(self._answers))
        self._forget(oldest)

    def _forget(self, key: str) -> None:
        """Under ``_answers_lock``: ``key``'s answer goes, with its bytes."""
        self._answers.pop(key, None)
        self._answer_bytes_total -= self._answer_bytes.pop(key, 0)

    def _unavailable(self) -> ForwardedResponse:
        body = orjson.dumps({"detail": f"shard {self.index} is not serving: {self._down}; retry later"})
        headers = [("content-type", "application/json"), ("retry-after", "1")]
        if self.role != "owner":  # a front asks the partner (standby) or waits (promoting)
            headers.append((ROLE_HEADER, self.role))
        return ForwardedResponse(503, headers, body)

    def close(self) -> None:
        """Stop the mending, drain and stop the app (the final checkpoint), then the loop. Idempotent."""
        if self._loop.is_closed():
            return
        with self._answers_lock, self._mending_lock:  # from here on no step-down nor mending starts
            self._closing.set()
        if self._mending is not None:
            self._mending.join()
        for retiring in self._retiring:  # apps that stepped down, closed before the loop stops
            retiring.join()
        try:
            if self._serving is not None:
                self._run(self._serving.close())
        finally:
            self._serving = None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
