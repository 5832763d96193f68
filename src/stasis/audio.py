"""WAV in the shape Asterisk plays: mono, 16-bit, 8 kHz (``.wav``) or 16 kHz (``.wav16``).

Conversion runs ``sox`` when it is installed and falls back to plain Python (``wave`` + linear
interpolation) otherwise; ``audioop`` is deprecated and not used.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import io
import shutil
import sys
import wave
from dataclasses import dataclass

__all__ = ["WavInfo", "convert_wav", "extension_for", "run_process", "silence_wav", "wav_info"]


@dataclass(frozen=True, slots=True)
class WavInfo:
    rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.rate if self.rate else 0.0


def extension_for(rate: int) -> str:
    """The file extension Asterisk expects for a mono 16-bit WAV at ``rate``."""
    return ".wav16" if rate == 16000 else ".wav"


def wav_info(data: bytes) -> WavInfo:
    """Format of a WAV file in memory (``wave.Error`` when it is not one)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        return WavInfo(w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())


def silence_wav(seconds: float, rate: int = 8000, *, extra_chunk: tuple[bytes, bytes] | None = None) -> bytes:
    """A silent mono 16-bit WAV (``extra_chunk`` = (id, payload) appended as a RIFF chunk)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    data = out.getvalue()
    if extra_chunk is not None:
        cid, payload = extra_chunk
        if len(payload) % 2:
            payload += b"\0"
        data += cid + len(payload).to_bytes(4, "little") + payload
        data = data[:4] + (len(data) - 8).to_bytes(4, "little") + data[8:]
    return data


def _python_convert(data: bytes, rate: int) -> bytes:
    with wave.open(io.BytesIO(data), "rb") as w:
        src_rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.readframes(w.getnframes())
    if width == 1:
        samples = array.array("h", ((b - 128) << 8 for b in frames))
    elif width == 2:
        samples = array.array("h")
        samples.frombytes(frames)
        if sys.byteorder == "big":
            samples.byteswap()
    else:
        raise ValueError(f"{width * 8}-bit WAV is not supported without sox")
    if channels > 1:
        samples = array.array(
            "h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels))
        )
    if src_rate != rate and samples:
        n_out = max(1, round(len(samples) * rate / src_rate))
        step = src_rate / rate
        last = len(samples) - 1
        out = array.array("h")
        for i in range(n_out):
            pos = i * step
            j = int(pos)
            frac = pos - j
            a = samples[min(j, last)]
            b = samples[min(j + 1, last)]
            out.append(int(a + (b - a) * frac))
        samples = out
    if sys.byteorder == "big":
        samples.byteswap()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


async def run_process(args: list[str], stdin: bytes, *, timeout: float) -> tuple[int, bytes, bytes]:
    """Run ``args`` feeding ``stdin``; ``(returncode, stdout, stderr)``.  On timeout (``TimeoutError``)
    or cancellation the process is killed and reaped, never left behind."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin)
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return proc.returncode if proc.returncode is not None else -1, out, err


async def convert_wav(data: bytes, rate: int, *, timeout: float = 20.0) -> bytes:
    """``data`` (any WAV sox reads) as mono 16-bit PCM WAV at ``rate``."""
    info = wav_info(data) if data[:4] == b"RIFF" else None
    if info is not None and (info.rate, info.channels, info.sample_width) == (rate, 1, 2):
        return data
    sox = shutil.which("sox")
    if sox is None:
        return _python_convert(data, rate)
    args = [
        sox,
        "-V1",
        "-t",
        "wav",
        "-",
        "-t",
        "wav",
        "-r",
        str(rate),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed-integer",
        "-",
    ]
    rc, out, err = await run_process(args, data, timeout=timeout)
    if rc != 0:
        raise ValueError(f"sox failed ({rc}): {err.decode(errors='replace').strip()[:200]}")
    # sox writes to a pipe with unknown length in the header: rewrite it with the real sizes.
    return _python_convert(out, rate) if _header_lies(out) else out


def _header_lies(data: bytes) -> bool:
    try:
        info = wav_info(data)
    except (wave.Error, EOFError):
        return True
    return info.frames * info.channels * info.sample_width > len(data)
