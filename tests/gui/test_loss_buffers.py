"""The loss curves stay bounded over a run of any length (issue #6: nothing grows without bound)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.gui.views.loss_plot import MAX_POINTS, SeriesBuffer
from explorer.training.events import EpochEnd, StepLoss


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100, 1000])
def test_a_buffer_never_holds_more_than_its_limit_and_keeps_the_outline(n: int) -> None:
    buf = SeriesBuffer(max_points=8)
    xs = np.arange(n, dtype=float)
    for x in xs:
        buf.append(x, 2 * x)
    assert buf.n <= 8 and len(buf) <= 9, "stored points, plus one partial mean at most"
    if n <= 8:
        assert np.array_equal(buf.x, xs)
    else:
        assert buf.n >= 4, "compaction keeps at least half"
        assert np.all(np.diff(buf.x) > 0), "still in order"
        assert np.allclose(buf.y, 2 * buf.x), "means of pairs stay on the line"
        assert buf.x[0] < n / 8 and buf.x[-1] > n - n / 4, "the whole run is covered, start to end"
        spacing = np.diff(buf.x)
        assert spacing.max() <= 2 * spacing.min() + 1e-9, "evenly spaced"


def test_a_buffer_rejects_an_odd_limit() -> None:
    with pytest.raises(ValueError):
        SeriesBuffer(max_points=7)


def test_a_long_run_in_the_plot_stays_within_the_limit(window) -> None:
    plot = window.loss_plot
    steps = 3 * MAX_POINTS
    for i in range(1, steps + 1):
        plot._on_step(StepLoss(epoch=1, step=i, global_step=i, loss=100.0 / i, parts={"recon": 80.0 / i,
                                                                                       "kl": 20.0 / i},
                               samples_per_s=1.0, lr=1e-3, beta=1.0))
    plot._on_epoch(EpochEnd(epoch=1, train={"loss": 1.0}, test={"loss": 2.0, "recon": 1.5, "kl": 0.5},
                            seconds=1.0, samples_per_s=1.0))
    assert all(len(buf) <= MAX_POINTS + 1 for buf in plot.series.values())
    raw = plot.series["train loss (raw)"]
    assert raw.x[-1] > 0.99 * steps, "the curve reaches the latest step"
    assert plot.series["test loss"].x[-1] == steps, "the test point sits at the step just reported"
    plot._redraw()
    x, y = plot.curves["train loss (raw)"].getData()
    assert len(x) == len(raw) and x[-1] == raw.x[-1]
