"""The pure parts of bench.soak (the growth verdict), bench.steady (lag from checkpoint samples)
and bench.scale_out (the model for more cores); no service is started."""

from __future__ import annotations

from pathlib import Path

from bench.scale_out import model
from bench.soak import TOLERANCES, grows, slope
from bench.steady import CheckpointPoller

MINUTE_XS = [5.0 * n for n in range(24)]  # two minutes of 5 s samples


def test_slope_is_the_least_squares_fit() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == 2
    assert slope([0, 1], [4, 4]) == 0
    assert slope([1], [9]) == 0


def test_a_leak_grows_and_a_warm_up_that_levels_off_does_not() -> None:
    leak = [100 + 0.5 * x for x in MINUTE_XS]  # +30 MiB a minute, to the end
    warm_up = [100 + min(x, 40) for x in MINUTE_XS]  # +40 MiB in the first 40 s, then flat
    noisy = [100 + (3 if n % 2 else -3) for n in range(len(MINUTE_XS))]
    assert grows(MINUTE_XS, leak, TOLERANCES["rss_mb"])["grows"]
    assert not grows(MINUTE_XS, warm_up, TOLERANCES["rss_mb"])["grows"]
    assert not grows(MINUTE_XS, noisy, TOLERANCES["rss_mb"])["grows"]


def test_a_small_rise_within_the_noise_floor_is_flat() -> None:
    creeping = [10 + 0.01 * x for x in MINUTE_XS]  # lag p99 +0.6 ms a minute: under 20 ms
    assert not grows(MINUTE_XS, creeping, TOLERANCES["ms"])["grows"]


def test_each_lag_is_from_the_answer_to_the_first_sample_at_or_past_its_sequence(
    tmp_path: Path,
) -> None:
    poller = CheckpointPoller(f"sqlite:///{tmp_path / 'x.db'}", "tickets")
    poller.times, poller.positions = [1.0, 1.1, 1.2, 1.3], [0, 5, 5, 9]
    calls = [
        (0, 0.9, 0.95, 3),  # reached at 1.1
        (1, 1.0, 1.15, 5),  # reached at 1.1, before its answer was read: 0
        (2, 1.1, 1.2, 7),  # reached at 1.3
        (3, 1.2, 1.25, 10),  # never
    ]
    lags, missed = poller.lags(calls)
    assert [round(lag, 3) for lag in lags] == [0.15, 0.0, 0.1]
    assert missed == 1


def test_the_model_takes_the_smallest_bound() -> None:
    measured = {
        "api_cpu_ms_per_call": 2.0,
        "worker_cpu_ms_per_call": 1.0,
        "nats_cpu_ms_per_call": 0.5,
    }
    whole = {"api_cpu_ms_per_call": 2.5, "nats_cpu_ms_per_call": 0.5}
    two = model(
        measured, whole, 2
    )  # all cores 2 / 3.5 ms = 571/s; one replica 500/s; worker 1,000/s
    assert (two["split_s"], two["bound_by"], two["api_replicas"]) == (500, "api replicas", 1)
    assert two["one_process_s"] == 400  # one core: 1 / 2.5 ms
    eight = model(measured, whole, 8)  # all cores 2,286/s; 7 replicas 3,500/s; worker 1,000/s
    assert (eight["split_s"], eight["bound_by"]) == (1000, "one worker")
    assert eight["one_process_s"] == 400
