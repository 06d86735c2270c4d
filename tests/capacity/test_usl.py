from __future__ import annotations

import math

import pytest

from opskit.capacity.usl import fit, peak, usl

from .conftest import SPECSDM91_N, SPECSDM91_X, usl_x


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_reproduces_the_published_specsdm91_fit():
    # R package usl, data set specsdm91: sigma 0.0277285, kappa 0.0001044, lambda 89.9952 (facts.md)
    f = fit(SPECSDM91_N, SPECSDM91_X)
    assert rel(f.sigma, 0.0277285) < 1e-3
    assert rel(f.kappa, 0.0001044) < 1e-3
    assert rel(f.lambda_, 89.9952) < 1e-3
    assert f.peak_concurrency == pytest.approx(96.5, abs=0.1)
    assert f.peak_throughput == pytest.approx(1884, abs=1)
    assert f.r_squared > 0.98 and not f.kappa_clamped and f.warnings == []
    # residuals are measured - fitted, as R reports them
    for n, x, r in zip(SPECSDM91_N, SPECSDM91_X, f.residuals, strict=True):
        assert x - f.throughput(n) == pytest.approx(r)
    for key, value in (("sigma", f.sigma), ("kappa", f.kappa), ("lambda", f.lambda_)):
        iv = f.intervals[key]
        assert iv.low is not None and iv.high is not None and iv.low < value < iv.high


@pytest.mark.parametrize(("sigma", "kappa", "lam"), [(0.05, 0.0002, 100.0), (0.2, 1e-5, 12.5), (0.001, 0.003, 950.0)])
def test_recovers_known_coefficients_from_exact_data(sigma, kappa, lam):
    ns = [1, 2, 4, 8, 16, 32, 64, 128]
    f = fit(ns, [usl_x(n, sigma, kappa, lam) for n in ns])
    assert rel(f.sigma, sigma) < 1e-4
    assert rel(f.kappa, kappa) < 1e-4
    assert rel(f.lambda_, lam) < 1e-4
    assert f.peak_concurrency == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-4)
    assert f.r_squared == pytest.approx(1.0, abs=1e-9)


def test_confidence_intervals_cover_the_truth_with_noise():
    sigma, kappa, lam = 0.04, 0.0003, 50.0
    ns = [1, 4, 8, 16, 24, 32, 48, 64, 96]
    wiggle = [1.01, 0.99, 1.02, 0.985, 1.0, 1.015, 0.99, 1.005, 0.995]  # fixed +-2% noise, no RNG
    f = fit(ns, [usl_x(n, sigma, kappa, lam) * w for n, w in zip(ns, wiggle, strict=True)])
    for key, truth in (("sigma", sigma), ("kappa", kappa), ("lambda", lam)):
        iv = f.intervals[key]
        assert iv.low <= truth <= iv.high, (key, iv, truth)


def test_negative_kappa_is_clamped_with_a_warning():
    # superlinear data: an unconstrained fit wants kappa < 0 (like R usl's raytracer set)
    ns = [1, 4, 8, 12, 16, 20, 24, 32]
    xs = [usl_x(n, 0.02, -0.0004, 20.0) for n in ns]
    f = fit(ns, xs)
    assert f.kappa == 0.0 and f.kappa_clamped
    assert f.peak_concurrency is None
    assert f.sigma > 0 and f.peak_throughput == pytest.approx(f.lambda_ / f.sigma)  # the ceiling, not a peak
    assert any("kappa" in w and "clamped" in w for w in f.warnings)


def test_fewer_than_six_points_warns_and_fewer_than_three_fails():
    ns = [1, 8, 16, 32, 64]
    f = fit(ns, [usl_x(n, 0.05, 0.0002, 100) for n in ns])
    assert any("only 5 load levels" in w for w in f.warnings)
    with pytest.raises(ValueError, match="at least 3"):
        fit([1, 2], [10, 19])
    with pytest.raises(ValueError, match="distinct"):
        fit([4, 4, 8], [10, 10, 19])
    with pytest.raises(ValueError, match="> 0"):
        fit([0, 2, 4], [1, 2, 3])


def test_peak_without_coherency_is_the_contention_ceiling():
    assert peak(0.1, 0.0, 50.0, 100) == (None, pytest.approx(500.0))
    n_star, x_star = peak(0.0277285, 0.0001044, 89.9952, 216)
    assert n_star == pytest.approx(96.5, abs=0.05)
    assert x_star == pytest.approx(usl(n_star, 0.0277285, 0.0001044, 89.9952))


def test_clamped_kappa_has_no_interval_and_low_concurrency_warns():
    ns = [1, 4, 8, 12, 16, 20, 24, 32]
    f = fit(ns, [usl_x(n, 0.02, -0.0004, 20.0) for n in ns])
    assert f.intervals["kappa"].low is None and f.intervals["sigma"].low is not None
    assert any("throughput ceiling" in w for w in f.warnings)
    low = fit([0.05, 0.1, 0.3, 0.6, 1.0, 1.4], [5, 10, 29, 60, 98, 140])
    assert any("far from saturation" in w for w in low.warnings)


def test_matches_r_usl_summary_of_specsdm91():
    # smoeding/usl tests/summary.Rout.save: std. errors 9.122e-03, 1.988e-05, 1.421e+01; residual standard
    # error 82.85 on 4 degrees of freedom; R-squared 0.9896; residuals from -81.66 to 111.09
    f = fit(SPECSDM91_N, SPECSDM91_X)
    assert f.intervals["sigma"].std_error == pytest.approx(9.122e-03, rel=2e-3)
    assert f.intervals["kappa"].std_error == pytest.approx(1.988e-05, rel=2e-3)
    assert f.intervals["lambda"].std_error == pytest.approx(14.21, rel=2e-3)
    assert math.sqrt(sum(r * r for r in f.residuals) / 4) == pytest.approx(82.85, abs=0.01)
    assert round(f.r_squared, 4) == 0.9896
    assert min(f.residuals) == pytest.approx(-81.66, abs=0.01) and max(f.residuals) == pytest.approx(111.09, abs=0.01)


def test_held_out_r_usl_coef_data_set():
    # smoeding/usl tests/coef.R: Gunther's rounded example; published coef alpha 0.02, beta 0.02, gamma 1.00
    f = fit([1, 2, 4, 6, 8, 10], [1, 1.8868, 3.0769, 3.5294, 3.5398, 3.3557])
    assert f.sigma == pytest.approx(0.02, rel=1e-3)
    assert f.kappa == pytest.approx(0.02, rel=1e-3)
    assert f.lambda_ == pytest.approx(1.0, rel=1e-3)


def test_a_spike_run_fit_is_marked_not_usable():
    """A spike run (two rates, a handful of steps, never near saturation) fits a curve with R² near 1 but
    lambda +- thousands: the fit says it is not usable instead of reporting a peak."""
    f = fit([0.04, 0.05, 0.9, 0.06, 0.05], [20, 22, 400.6, 22, 21])
    assert f.unusable is not None and f.unusable.startswith("lambda is ")
    assert f.as_dict()["usable"] is False
    good = fit(SPECSDM91_N, SPECSDM91_X)
    assert good.unusable is None and good.as_dict()["usable"] is True
