"""``stasis run``: the ARI service under systemd (``Type=notify``).

- ``READY=1`` once the prompts are loaded and the event loop runs: Asterisk may still be away, and
  the service keeps watching prompts (and says so in ``STATUS=``) while it reconnects.
- ``STATUS=prompts ab12cd34 (inotify) · ARI connected · 3 calls``, kept current.
- ``WATCHDOG=1`` from the event loop every ``WATCHDOG_USEC``/2, so a hung loop gets restarted.
- SIGHUP: ``RELOADING=1`` + ``MONOTONIC_USEC``, reload prompts (source ``signal``) and the knowledge
  base, ``READY=1``.
- SIGTERM/SIGINT: ``STOPPING=1``, no new calls, active calls may finish within
  ``CALL_GRACE_SECONDS``, the rest hear the goodbye and are hung up, the call log is flushed, exit 0.

Signal handlers only record what arrived; the main loop acts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from typing import Any

from promptwatch.snapshot import HotPrompts, Snapshot
from promptwatch.systemd import notify, notify_reloading, watchdog_interval

from .agent import Agent, build_llm
from .ari.client import AriClient
from .ari.events import ConnectionState
from .ari_line import AriLine
from .backends.stt import NoStt, OpenAiStt, SttBackend
from .backends.tts import EspeakTts, OpenAiTts, SpeechCache, TtsBackend
from .call import DEFAULT_BUSY, CallFlow, FlowConfig
from .calllog import CallLog, CallLogWriter
from .errors import AriAuthError, ConfigError, TtsError
from .kb import KnowledgeBase
from .line import split_sentences
from .metrics import Metrics
from .settings import StasisSettings

__all__ = ["StasisService", "build_stt", "build_tts", "flow_config", "speech_texts"]

logger = logging.getLogger("stasis.service")

EXIT_OK = 0
EXIT_ARI_AUTH = 3


def build_stt(settings: StasisSettings) -> SttBackend:
    if settings.stt_backend == "none":
        return NoStt()
    if not settings.stt_url:
        raise ConfigError("STT_BACKEND=openai needs STT_URL (e.g. http://127.0.0.1:9000/v1)")
    key = settings.stt_api_key.get_secret_value() if settings.stt_api_key else None
    return OpenAiStt(
        settings.stt_url,
        model=settings.stt_model,
        language=settings.stt_language or None,
        api_key=key,
        timeout=settings.stt_timeout_seconds,
    )


def build_tts(settings: StasisSettings) -> TtsBackend:
    if settings.tts_backend == "espeak":
        try:
            return EspeakTts(
                voice=settings.espeak_voice, speed=settings.espeak_speed, timeout=settings.tts_timeout_seconds
            )
        except TtsError as e:
            raise ConfigError(f"TTS_BACKEND=espeak: {e.reason}") from e
    if not settings.tts_url:
        raise ConfigError("TTS_BACKEND=openai needs TTS_URL (e.g. https://api.openai.com/v1)")
    key = settings.tts_api_key.get_secret_value() if settings.tts_api_key else None
    return OpenAiTts(
        settings.tts_url,
        model=settings.tts_model,
        voice=settings.tts_voice,
        api_key=key,
        timeout=settings.tts_timeout_seconds,
    )


def flow_config(settings: StasisSettings) -> FlowConfig:
    return FlowConfig(
        max_turns=settings.max_turns,
        filler_after=settings.filler_after_ms / 1000,
        no_input_limit=settings.no_input_limit,
        reply_timeout=settings.llm_timeout_seconds * 2 + 5,
        goodbye_phrases=settings.goodbye_phrases,
        operator_digit=settings.operator_digit if settings.operator_context else None,
    )


def speech_texts(snapshot: Snapshot) -> list[str]:
    """The pieces (sentences) of what every call may need at once: greeting, fillers, goodbye,
    fallback, busy and operator phrases — as :meth:`Line.say` will ask for them."""
    p = snapshot.prompts
    phrases = [p.greeting, *p.fillers, p.goodbye, p.fallback, p.get("busy") or DEFAULT_BUSY, p.get("operator")]
    pieces = [piece for text in phrases if text for piece in split_sentences(text)]
    return list(dict.fromkeys(pieces))


class StasisService:
    """One ARI application; :meth:`run` returns the exit code."""

    def __init__(self, settings: StasisSettings, *, install_signals: bool = True) -> None:
        self.settings = settings
        self.install_signals = install_signals
        self.calls: dict[str, asyncio.Task[str]] = {}
        self.ari_state: ConnectionState = "connecting"
        self.stopping = False
        self.ready = asyncio.Event()
        self.metrics_port: int | None = None
        self._signals: deque[str] = deque()
        self._wake = asyncio.Event()
        self._status = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy: set[asyncio.Task[str]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.prompts: HotPrompts | None = None
        self.kb: KnowledgeBase | None = None
        self.ari: AriClient | None = None
        self.speech: SpeechCache | None = None
        self.metrics: Metrics | None = None
        self.stt: SttBackend = NoStt()
        self.agent: Agent
        self.calllog: CallLog
        self.calllog_writer: CallLogWriter
        self.flow_config = flow_config(settings)
        self.exit_code = EXIT_OK

    # -- requests from outside the loop (signal handlers, tests)

    def request(self, what: str) -> None:
        """Record ``reload`` or ``stop``; the main loop acts on it.  Safe from any thread."""
        loop = self._loop
        if loop is None:
            self._signals.append(what)
        elif loop.is_running():
            loop.call_soon_threadsafe(self._record, what)

    def _record(self, what: str) -> None:
        self._signals.append(what)
        self._wake.set()

    # -- status

    def status_text(self) -> str:
        if self.prompts is None:
            return "starting"
        snap = self.prompts.current
        ari = {
            "connected": "ARI connected",
            "connecting": "ARI connecting",
            "disconnected": "ARI disconnected, reconnecting",
            "unauthorized": "ARI credentials rejected",
        }[self.ari_state]
        n = len(self.calls)
        text = f"prompts {snap.short} ({self.prompts.mode}) · {ari} · {n} call{'' if n == 1 else 's'}"
        if self.prompts.last_error:
            text += " · prompts file rejected"
        if self.stopping:
            text += " · stopping"
        return text

    def _update_status(self) -> None:
        text = self.status_text()
        if text != self._status:
            self._status = text
            notify(f"STATUS={text}")

    def _on_ari_state(self, state: ConnectionState) -> None:
        self.ari_state = state
        if self.metrics is not None:
            self.metrics.ari_connected.set(1 if state == "connected" else 0)
        self._update_status()

    # -- calls

    def _on_stasis_start(self, event: dict[str, Any]) -> None:
        assert self.ari is not None and self.prompts is not None and self.speech is not None
        channel = event.get("channel") or {}
        if not channel.get("id"):
            return
        s = self.settings
        operator = (s.operator_context, s.operator_extension, s.operator_priority) if s.operator_context else None
        line = AriLine(
            self.ari,
            channel,
            speech=self.speech,
            stt=self.stt,
            record_max_seconds=s.record_max_seconds,
            record_silence_seconds=s.record_silence_seconds,
            operator=operator,
        )
        flow = CallFlow(
            line,
            self.prompts.current,  # pinned for the whole call
            self.agent,
            self.flow_config,
            calllog=self.calllog_writer,
            metrics=self.metrics,
        )
        if self.stopping or len(self.calls) >= s.max_calls:
            task = asyncio.ensure_future(flow.run_busy())
            self._busy.add(task)
            task.add_done_callback(lambda t: self._busy.discard(t))
            task.add_done_callback(lambda t: self._spawn(line.close()))
            return
        task = asyncio.ensure_future(flow.run())
        self.calls[line.call_id] = task
        if self.metrics is not None:
            self.metrics.active_calls.set(len(self.calls))
        task.add_done_callback(lambda t: self._call_done(line, t))
        self._update_status()

    def _call_done(self, line: AriLine, task: asyncio.Task[str]) -> None:
        self.calls.pop(line.call_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call=%s task failed: %r", line.call_id, task.exception())
        if self.metrics is not None:
            self.metrics.active_calls.set(len(self.calls))
        self._spawn(line.close())
        self._update_status()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- prompts and speech

    def _on_reload(self, old: Snapshot, new: Snapshot) -> None:
        """In the reload thread: hand over to the loop (status, metrics, pre-synthesis)."""
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._reloaded, new)

    def _on_prompts_error(self, message: str, sha: str | None, source: str) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._update_status)

    def _reloaded(self, new: Snapshot) -> None:
        if self.metrics is not None:
            self.metrics.prompts_loaded(new.sha256, new.source)
        self._update_status()
        self._spawn(self._presynthesize(new))

    async def _presynthesize(self, snapshot: Snapshot) -> None:
        """Synthesise the phrases every call needs, so the first call after an edit does not wait."""
        assert self.speech is not None
        started = time.monotonic()
        texts = speech_texts(snapshot)
        results = await asyncio.gather(*(self.speech.get(t) for t in texts), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed[:3]:
            logger.warning("pre-synthesis for prompts %s failed: %s", snapshot.short, error)
        logger.info(
            "pre-synthesised %d phrases for prompts %s in %.0f ms",
            len(texts) - len(failed),
            snapshot.short,
            (time.monotonic() - started) * 1000,
        )

    # -- the main loop

    def _setup(self) -> None:
        s = self.settings
        self.prompts = HotPrompts.from_settings(s, service=s.service_name)
        try:
            self.kb = KnowledgeBase.from_settings(s)
            self.stt = build_stt(s)
            self.speech = SpeechCache(build_tts(s), s.sounds_dir, rate=s.tts_sample_rate)
            self.agent = Agent(build_llm(s), self.kb)
            s.calllog_path.parent.mkdir(parents=True, exist_ok=True)
            self.calllog = CallLog(s.calllog_path)
            self.calllog_writer = CallLogWriter(self.calllog)
        except BaseException:
            self.prompts.close()
            if self.kb is not None:
                self.kb.close()
            raise
        if s.metrics_port is not None:
            self.metrics = Metrics()
            self.metrics_port = self.metrics.serve(s.metrics_port, s.metrics_host)
            self.metrics.prompts_loaded(self.prompts.current.sha256, "startup")
        self.prompts.on_reload(self._on_reload)
        self.prompts.on_error(self._on_prompts_error)
        self.ari = AriClient(
            s.ari_url,
            s.ari_user,
            s.ari_password.get_secret_value(),
            s.ari_app,
            on_stasis_start=self._on_stasis_start,
            on_state=self._on_ari_state,
            max_delay=s.ari_reconnect_max_seconds,
        )

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        if self._signals:
            self._wake.set()
        await asyncio.to_thread(self._setup)
        assert self.prompts is not None and self.ari is not None
        handlers = self._install_signals()
        ari_task = asyncio.ensure_future(self.ari.run())
        watchdog = self._start_watchdog()
        self._spawn(self._presynthesize(self.prompts.current))
        housekeeping = asyncio.ensure_future(self._housekeeping())
        notify("READY=1")
        self._update_status()
        self.ready.set()
        logger.info(
            "ready app=%s ari=%s prompts=%s", self.settings.ari_app, self.settings.ari_url, self.prompts.current.short
        )
        try:
            while True:
                wake = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({wake, ari_task}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                self._wake.clear()
                if ari_task.done() and not self.stopping:
                    error = ari_task.exception()
                    if isinstance(error, AriAuthError):
                        logger.error("%s: %s; not retrying", self.settings.ari_url, error)
                        self.exit_code = EXIT_ARI_AUTH
                    else:
                        logger.error("ARI client stopped: %r", error)
                        self.exit_code = 1
                    self._signals.append("stop")
                while self._signals:
                    what = self._signals.popleft()
                    if what == "reload" and not self.stopping:
                        await self._reload()
                    elif what == "stop" and not self.stopping:
                        self.stopping = True
                if self.stopping:
                    break
            await self._shutdown(ari_task)
        finally:
            housekeeping.cancel()
            if watchdog is not None:
                watchdog.cancel()
            self._restore_signals(handlers)
        return self.exit_code

    async def _reload(self) -> None:
        assert self.prompts is not None and self.kb is not None
        notify_reloading()
        logger.info("reloading on SIGHUP")
        changed = await asyncio.to_thread(self.prompts.reload, "signal")
        kb_changed = await asyncio.to_thread(self.kb.reload, "signal")
        logger.info("reload done prompts=%s changed=%s kb_changed=%s", self.prompts.current.short, changed, kb_changed)
        notify("READY=1")
        self._update_status()

    async def _shutdown(self, ari_task: asyncio.Task[None]) -> None:
        assert self.prompts is not None and self.ari is not None and self.kb is not None
        notify("STOPPING=1")
        self._update_status()
        grace = self.settings.call_grace_seconds
        active = set(self.calls.values()) | self._busy
        logger.info("stopping: %d active calls, grace %.0fs", len(active), grace)
        if active:
            _, pending = await asyncio.wait(active, timeout=grace)
            for task in pending:
                task.cancel()  # the call says goodbye and hangs up
            if pending:
                await asyncio.wait(pending, timeout=30)
        if self._background:
            await asyncio.wait(set(self._background), timeout=10)
        ari_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ari_task
        await self.ari.aclose()
        await self.agent.llm.aclose()
        await self.stt.aclose()
        if self.speech is not None:
            await self.speech.aclose()
        await asyncio.to_thread(self._close_sync)
        logger.info("stopped")

    def _close_sync(self) -> None:
        assert self.prompts is not None and self.kb is not None
        self.calllog_writer.close()  # flushes
        self.calllog.close()
        self.kb.close()
        self.prompts.close()
        if self.metrics is not None:
            self.metrics.close()

    async def _housekeeping(self) -> None:
        """Hourly: remove sound files unused for SOUNDS_MAX_AGE_DAYS (one-off replies pile up)."""
        assert self.speech is not None
        max_age = self.settings.sounds_max_age_days * 86400
        while True:
            try:
                await asyncio.to_thread(self.speech.prune, max_age)
            except OSError as e:
                logger.warning("cannot prune %s: %s", self.speech.directory, e)
            await asyncio.sleep(3600)

    # -- signals and watchdog

    def _install_signals(self) -> dict[int, Any]:
        if not self.install_signals:
            return {}
        assert self._loop is not None
        previous: dict[int, Any] = {}
        for sig, what in ((signal.SIGHUP, "reload"), (signal.SIGTERM, "stop"), (signal.SIGINT, "stop")):
            previous[sig] = signal.getsignal(sig)
            self._loop.add_signal_handler(sig, self._record, what)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        if self._loop is None:
            return
        for sig, handler in previous.items():
            self._loop.remove_signal_handler(sig)
            signal.signal(sig, handler)

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        interval = watchdog_interval()
        if interval is None:
            return None

        async def ping() -> None:
            while True:
                notify("WATCHDOG=1")
                await asyncio.sleep(interval)

        logger.info("watchdog ping every %.1fs", interval)
        return asyncio.ensure_future(ping())
