"""wrk as the intake's closed-loop load generator, when it is on PATH (else bench/loadgen.py).

wrk (C, one epoll thread here) costs the shared CPUs far less a request than the Python generator,
so more of them go to the servers measured. It sends the same signed deliveries: they are written
as raw HTTP requests to a file its Lua script loads, and sent in order, each once, until the run's
duration is up; a run that outlasts the list starts over (the repeats are duplicate deliveries,
which the result counts). wrk does not pace requests, so the fixed-rate run stays with
bench/loadgen.py, which times each request from when it was due.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import Delivery

# Loads "<length>\n<request>" records; `done` prints the summary as one JSON line.
SCRIPT = r"""
local requests, n, i = {}, 0, 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    n = n + 1
    requests[n] = data:sub(nl + 1, nl + len)
    pos = nl + 1 + len
  end
end

function request()
  i = i % n + 1
  return requests[i]
end

function done(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    """What the bench reads of a loadgen.LoadResult (sent, ok, errors, rate, percentiles)."""

    sent: int
    ok: int
    errors: int
    seconds: float
    repeated: int  # deliveries sent a second time because the run outlasted the list
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        return {50: self.p50_ms, 99: self.p99_ms}[p]


def available() -> str | None:
    """wrk's path, or None."""
    return shutil.which("wrk")


def version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "wrk"
    return " ".join(first.split()[:2])


def closed_loop(
    port: int, path: str, deliveries: list[Delivery], *, connections: int = 16, seconds: float = 5.0
) -> WrkResult:
    """`connections` keep-alive connections sending the deliveries back to back for `seconds`."""
    with tempfile.TemporaryDirectory(prefix="billhook-wrk-") as tmp:
        requests_file = Path(tmp) / "requests"
        script = Path(tmp) / "deliveries.lua"
        with open(requests_file, "wb") as out:
            for body, headers in deliveries:
                raw = _raw_request(port, path, body, headers)
                out.write(b"%d\n" % len(raw) + raw)
        script.write_text(SCRIPT)
        args = [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "--script",
            str(script),
            f"http://127.0.0.1:{port}{path}",
            "--",
            str(requests_file),
        ]
        run = subprocess.run(args, capture_output=True, text=True, check=False, timeout=seconds + 60)
    summary = _summary(run)
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    sent = summary["requests"]
    return WrkResult(
        sent=sent,
        ok=sent - summary["status"],
        errors=errors,
        seconds=summary["duration_us"] / 1e6,
        repeated=max(0, sent - len(deliveries)),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
    )


def _raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _summary(run: subprocess.CompletedProcess) -> dict:
    for line in reversed(run.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"wrk printed no summary (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")
