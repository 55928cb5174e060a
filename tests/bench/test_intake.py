"""The bench's intake comparison: production's gunicorn options, ratios kept per round, and each
server up only for its own run."""

from __future__ import annotations

import os
import sys

import pytest

from bench import services
from bench.intake import Round, Server, paired_rounds, ratio_to
from bench.loadgen import LoadResult
from bench.services import procfile_gunicorn_options
from cli import embedded_redis


def test_the_bench_takes_the_procfiles_gunicorn_options_less_bind_and_app(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "redis: billhook dev redis\n"
        "web: .venv/bin/gunicorn --bind 127.0.0.1:$PORT --worker-class gthread --threads 4 -w 2 web.wsgi:app\n"
    )
    assert procfile_gunicorn_options(procfile) == ["--worker-class", "gthread", "--threads", "4", "-w", "2"]


def test_a_ratio_is_taken_within_each_round_and_summarised_by_its_median():
    rounds = [
        Round(rps={"bare": 1000, "billhook": 400}),
        Round(rps={"bare": 2000, "billhook": 600}),  # a noisy round slows the bare side, not the pair's ratio
        Round(rps={"bare": 1000, "billhook": 500}),
    ]
    ratio = ratio_to(rounds, "billhook", "bare")
    assert (ratio.median, ratio.low, ratio.high) == (0.4, 0.3, 0.5)


def test_each_server_is_up_only_for_its_own_run_and_warmed_up_afresh_each_time(tmp_path):
    # Six web tiers up at once outran PostgreSQL's max_connections: a server runs only for its run.
    procs: list[services.Proc] = []

    def start(name: str):
        def run() -> services.Proc:
            port = embedded_redis.free_port()
            args = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
            proc = services.listening(services.spawn(name, args, dict(os.environ), tmp_path), port)
            procs.append(proc)
            return proc

        return run

    warmed: list[str] = []

    def warm_up(port: int, tag: str) -> None:
        assert embedded_redis.is_listening(port)
        warmed.append(tag)

    def closed_loop(port: int, deliveries: list) -> LoadResult:
        up = [p for p in procs if p.alive()]
        assert [p.port for p in up] == [port]  # only the server being measured
        return LoadResult(sent=len(deliveries), ok=len(deliveries), seconds=1.0, latencies=[0.001])

    servers = [Server(name, start(name), warm_up) for name in ("bare", "billhook")]
    rounds = paired_rounds(servers, lambda index, name: [b"x"] * (10 + index), closed_loop, rounds=2, say=print)

    assert [r.rps for r in rounds] == [{"bare": 10.0, "billhook": 10.0}, {"bare": 11.0, "billhook": 11.0}]
    assert warmed == ["0bare", "0billhook", "1bare", "1billhook"]
    assert len(procs) == 4 and not any(p.alive() for p in procs)


def test_a_server_is_stopped_when_its_run_fails(tmp_path):
    port = embedded_redis.free_port()
    args = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    proc = services.listening(services.spawn("failing", args, dict(os.environ), tmp_path), port)
    server = Server("failing", lambda: proc, lambda _port, _tag: None)

    with pytest.raises(RuntimeError), server.running():
        raise RuntimeError("wrk died")

    assert not proc.alive()
