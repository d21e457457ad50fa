import pytest

from rosmind.stats import latency_summary, wilson_interval

pytestmark = pytest.mark.unit


def test_wilson_hand_computed():
    # 8/10 at 95%: centre (0.8 + 1.92/10) / 1.384 = 0.7168, half 0.2272 (by hand).
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_wilson_edges():
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and 0.8 < lo < 0.9
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_latency_summary_ms():
    s = latency_summary([0.001] * 99 + [0.1])
    assert s["p50"] == pytest.approx(1.0) and s["n"] == 100 and s["p99"] > 1.0
