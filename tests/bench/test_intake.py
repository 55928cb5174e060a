"""The bench's intake comparison: production's gunicorn options, and ratios kept per round."""

from __future__ import annotations

from bench.intake import Round, ratio_to
from bench.services import procfile_gunicorn_options


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
