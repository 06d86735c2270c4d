from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.capacity.report import SECTIONS
from opskit.cli import cli

from .conftest import results_doc, synthetic_levels

GOLDEN = Path(__file__).parent / "golden" / "report_outline.txt"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def make_report(tmp_path: Path, spec: Path, *extra: str) -> tuple[str, str, str]:
    out = tmp_path / "review" / "report.html"
    r = CliRunner().invoke(cli, ["capacity", "report", "--spec", str(spec), "--out", str(out), *extra])
    assert r.exit_code == 0, r.stderr
    return out.read_text(encoding="utf-8"), out.with_suffix(".md").read_text(encoding="utf-8"), r.stdout


def outline(html: str, md: str) -> str:
    """The report's shape without its numbers: section ids, chart count per section, Markdown headings
    and table header rows. Regenerate: make golden"""
    lines = []
    for sid in re.findall(r'<section id="([^"]+)"', html):
        body = html.split(f'<section id="{sid}">', 1)[1].split("</section>", 1)[0]
        lines.append(f"section {sid}: {body.count('<svg')} chart(s), {body.count('<table')} table(s)")
    md_lines = md.splitlines()
    for i, ln in enumerate(md_lines):
        is_header = ln.startswith("| ") and i + 1 < len(md_lines) and md_lines[i + 1].startswith("|---")
        if ln.startswith("#") or is_header:
            lines.append(ln)
    return "\n".join(lines) + "\n"


@pytest.fixture
def with_run(tmp_path, spec_copy, write_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(synthetic_levels(0.03, 0.0004, 40.0, [1, 2, 4, 8, 16, 24, 32, 48, 64]), name="20261122-step",
              root=tmp_path / "runs")
    return spec_copy


def test_report_golden_structure(tmp_path, with_run, golden):
    html, md, stdout = make_report(tmp_path, with_run)
    assert "runs/20261122-step/results.json" in stdout
    golden(GOLDEN, outline(html, md))


def test_report_is_self_contained_and_answers_the_headline_questions(tmp_path, with_run):
    html, md, _ = make_report(tmp_path, with_run)
    assert [f'<section id="{sid}">' in html for sid, _ in SECTIONS] == [True] * len(SECTIONS)
    assert [f"## {heading}" in md for _, heading in SECTIONS] == [True] * len(SECTIONS)
    # no external assets: no scripts, stylesheets, images or fonts fetched from anywhere
    assert not re.search(r"<(script|link|img|iframe|object)\b", html)
    assert not re.search(r'(src|href)="(?!#)', html)
    assert not re.search(r"url\((?!#)", html) and "@import" not in html  # url(#clip) is the SVG's own
    for question in ("Headroom today", "Months until the first threshold", "Next action"):
        assert question in html and f"**{question}:**" in md
    assert "9 months (2027-09)" in md and "db-increase-size by 2027-09" in md
    assert "99.7%" in md  # 2 instances, one spare: 1.97 req/s of 579.6
    # ids of the inline charts do not collide inside the one HTML document
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert "Infracost golden test" not in html  # provenance summarises dates, not every source...
    assert "price dates" in md and "2026-05" in md and "unverified prices" in md
    assert "runs/20261122-step/results.json" in md


def test_report_without_runs_works_from_the_example_spec(tmp_path, spec_copy, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "smoke").mkdir(parents=True)
    # a one-step run is not a step run: it is passed over
    (tmp_path / "runs" / "smoke" / "results.json").write_text(json.dumps(results_doc([(2, 40.0, 5.0)])))
    html, md, stdout = make_report(tmp_path, spec_copy)
    assert "(no run used)" in stdout
    assert "No load-test run with steps was found" in md
    assert html.count("<svg") == 4  # peak traffic, two threshold drivers, timeline; no USL curve


def test_newest_step_run_is_chosen(tmp_path, spec_copy, write_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = write_run(synthetic_levels(0.03, 0.0004, 40.0, [1, 2, 4, 8, 16, 32]), name="a", root=tmp_path / "runs")
    new = write_run(synthetic_levels(0.05, 0.001, 30.0, [1, 2, 4, 8, 16, 32]), name="b", root=tmp_path / "runs")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    os.utime(new, (2_000_000_000, 2_000_000_000))
    _, md, stdout = make_report(tmp_path, spec_copy)
    assert "runs/b/results.json" in stdout and "| sigma (contention) | 0.05 |" in md
    _, md, stdout = make_report(tmp_path, spec_copy, "--results", str(old.parent))
    assert "runs/a" in stdout and "| sigma (contention) | 0.03 |" in md


def test_report_bad_run_is_an_error_without_partial_files(tmp_path, spec_copy):
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    out = tmp_path / "r.html"
    r = CliRunner().invoke(cli, ["capacity", "report", "--spec", str(spec_copy), "--results", str(bad),
                                 "--out", str(out)])
    assert r.exit_code == 3 and "schema_version" in r.stderr
    assert not out.exists() and not out.with_suffix(".md").exists()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path, with_run):
    html, _, _ = make_report(tmp_path, with_run)
    page = tmp_path / "review" / "report.html"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90,
                         check=True).stdout
    # the browser parsed every section and every chart, with drawn paths, and the tables
    for sid, heading in SECTIONS:
        assert f'id="{sid}"' in dom and heading in dom
    assert dom.count("<svg") == html.count("<svg") == 5
    assert dom.count("<path") >= 20 and dom.count("<table") == html.count("<table")
    shot = tmp_path / "shot.png"
    subprocess.run([*base, "--window-size=1100,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=90, check=True)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(str(shot))
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1100
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, chart lines and shading were drawn, not a blank page


def test_report_json_summary(tmp_path, with_run):
    out = tmp_path / "r.html"
    r = CliRunner().invoke(cli, ["capacity", "report", "--spec", str(with_run), "--out", str(out), "-o", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["html"] == str(out) and Path(doc["markdown"]).exists()
    assert [h["question"] for h in doc["headlines"]] == ["Headroom today", "Months until the first threshold",
                                                         "Next action"]
    assert doc["crossings"][0]["key"] == "database.storage_utilization" and doc["crossings"][0]["month"] == 9


def test_same_inputs_give_the_same_report(tmp_path, with_run):
    first, first_md, _ = make_report(tmp_path, with_run)
    second, second_md, _ = make_report(tmp_path, with_run)

    def strip(text: str) -> str:
        return re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "Generated <time>", text)

    assert strip(first) == strip(second) and strip(first_md) == strip(second_md)


def test_plans_that_do_not_match_the_forecast_are_flagged(tmp_path, spec_copy, monkeypatch):
    """The example's phase-3 provisions 8 API instances while the forecast (250 req/s per instance, 70%,
    N+1) needs 2-3: the review says so, and the horizon table gives each plan's verdict."""
    monkeypatch.chdir(tmp_path)
    html, md, _ = make_report(tmp_path, spec_copy)
    check = [ln for ln in md.splitlines() if ln.startswith("> **Check:** phase-3 provisions 8 api")]
    assert len(check) == 1, md
    assert "over-provisioned by" in check[0] and "the forecast needs at most" in check[0]
    need = int(check[0].split("needs at most ")[1].split()[0])
    assert f"over-provisioned by {8 - need}" in check[0]
    horizon = next(ln for ln in md.splitlines() if ln.startswith("| 24 |") and "over by" in ln)
    assert f"| phase-3 | 8 | over by {8 - need} |" in horizon


def test_storage_driver_is_charted_as_demand_against_capacity(tmp_path, spec_copy, monkeypatch):
    """db size grows to 1 TB against 100 GB today: plotted in GB against the threshold at 80% of today's
    capacity and of what each plan provisions, never as 1,000% on a percent axis."""
    from opskit.capacity.charts import driver_chart
    from opskit.capacity.forecast import forecast
    from opskit.spec import load_spec

    spec = load_spec(spec_copy)
    assert spec.growth is not None
    fc = forecast(spec.growth, months=24, resources=spec.resources, thresholds=spec.thresholds, plans=spec.plans)
    i = next(i for i, d in enumerate(fc.drivers) if d.key == "database.storage_utilization")
    d = fc.drivers[i]
    assert d.demand_unit == "GB" and d.demand[-1] == pytest.approx(1000.0)
    assert d.limit_now == [80.0] * 25  # 80% of resources.database.capacity (100 GB)
    assert d.limit_planned[0] == pytest.approx(80.0) and d.limit_planned[24] == pytest.approx(800.0)  # phase-3: 1 TB
    svg = driver_chart(fc, i)
    assert ">GB<" in svg and "percent" not in svg
