"""jaxdyn report: the page built from synthetic run folders of both formats, read as HTML and,
where Chromium is installed, as a reader sees it in a browser."""

import base64
import html
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from jaxdyn.report import build_report, find_runs, fmt_date, render_report  # noqa: E402
from jaxdyn.store import RunDir, write_json  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
STARTED = 1_700_000_000.0
# Characters a template engine must escape once: the bug was `&amp;quot;` on the page.
TRICKY = 'beta > sqrt(2) "alpha" & <b>gamma</b>'


def _png(path, color):
    fig, ax = plt.subplots(figsize=(1.2, 0.8), dpi=40)
    ax.plot([0, 1], [0, 1], color=color)
    fig.savefig(path)
    plt.close(fig)


def _claim(claim_id, kind, held, *, seeds=None, **fields):
    """A claim of the new contract, every key present."""
    seed_held = None if seeds is None else [v > 0 for v in seeds]
    claim = {
        "id": claim_id, "statement": f"statement of {claim_id}", "kind": kind,
        "source": {"quote": f"quoted {claim_id}", "where": "poster, panel 3"} if kind == "paper" else None,
        "why": f"why {claim_id}" if kind != "paper" else None, "reading": None, "held": held,
        "value": 0.5 if held else -0.5, "comparison": ">", "threshold": 0.0, "threshold_source": "the statement itself",
        "per_seed": seeds, "seed_held": seed_held,
        "fraction_held": None if seeds is None else sum(seed_held) / len(seeds),
        "required_fraction": None if seeds is None else 0.75, "margin_se": None if seeds is None else 3.25,
        "initial": None, "initial_per_seed": None, "excluded": 0, "excluded_reason": None,
    }
    claim.update(fields)
    return claim


def _new_run(folder, *, lr, preset, jaxdyn_version, flip):
    """A run folder in the redesigned format; ``flip`` turns one paper claim's verdict."""
    folder.mkdir(parents=True)
    seeds = [0.3, 0.2, -0.1, 0.4, 0.5, 0.6, 0.2, 0.1]
    claims = [
        _claim("beta-exceeds-sqrt2-alpha", "paper", True, seeds=seeds, statement=TRICKY,
               reading="t > 0 read as every recorded time after the first", initial=0.0,
               initial_per_seed=[0.0] * 8, excluded=1, excluded_reason="1 member diverged"),
        _claim("follows-the-ode", "paper", not flip),
        _claim("coarse-tasks-change-decision-layer", "extension", True),
        _claim("weights-stay-on-family", "sanity", True),
        _claim("conserved-quantity", "sanity", False),
    ]
    counts = {k: [sum(c["held"] for c in claims if c["kind"] == k), sum(c["kind"] == k for c in claims)]
              for k in ("paper", "extension", "sanity")}
    write_json(folder / "config.json", {"experiment": "saxe-reduction", "preset": preset,
                                        "command": f"jaxdyn run saxe-reduction --{preset}",
                                        "config": {"lr": lr, "seeds": 8, "num_steps": 300, "tolerance": 0.01}})
    write_json(folder / "status.json", {"state": "complete", "started": STARTED, "finished": STARTED + 75.0,
                                        "elapsed_s": 75.0, "pid": 1, "host": "elsewhere", "jaxdyn": jaxdyn_version,
                                        "jax": "0.10.2", "backend": "cpu", "devices": ["TFRT_CPU_0"]})
    _png(folder / "alpha_beta.png", "C0")
    _png(folder / "deviation.png", "C1")
    write_json(folder / "summary.json", {
        "experiment": "saxe-reduction", "work": "Saxe", "description": "three-layer linear net vs the alpha/beta ODE",
        "numbers": {"max_abs_deviation": 0.004, "note": TRICKY, "nested": {"per_v": [1.0, None, 2.5]},
                    "injected": "</pre><script>alert(1)</script>"},
        "figures": {"alpha_beta": "alpha(t) and beta(t): simulation (dots) against the ODE (lines)",
                    "deviation": "largest |simulation - theory| over members, per time"},
        "claims": claims, "claims_held": counts,
        "skipped_members": {"members": 8, "skipped": 1, "reasons": [{"member": 3, "reason": "diverged at step 120"}]},
        "elapsed_s": 75.0,
        "environment": {"jaxdyn": jaxdyn_version, "jax": "0.10.2", "backend": "cpu", "devices": ["TFRT_CPU_0"],
                        "python": "3.11.7", "machine": "x86_64"},
    })
    return claims


def _old_run(folder):
    """A run folder as jaxdyn 0.1 wrote it: claims with four keys, numbers at the top level."""
    folder.mkdir(parents=True)
    write_json(folder / "config.json", {"experiment": "rbe-response", "config": {"seeds": 4, "lr": 0.05}})
    write_json(folder / "status.json", {"state": "complete", "started": STARTED, "finished": STARTED + 4000.0,
                                        "elapsed_s": 4000.0, "pid": 1, "host": "elsewhere", "jaxdyn": "0.1.0", "jax": "0.10.2"})
    _png(folder / "response_vs_hamming.png", "C2")
    claims = [{"claim": "the response falls with Hamming distance & ages", "held": True, "value": 0.91, "threshold": 0.5},
              {"claim": "the aging exponent is near 1", "held": False, "value": float("nan"), "threshold": None}]
    # The landed (0.1) run layer wrote bare NaN tokens; such files exist, so write one as it did.
    (folder / "summary.json").write_text(json.dumps({
        "experiment": "rbe-response", "members": 4, "aging_exponent": float("nan"), "label": 'say "hi"',
        "claims": claims,
        "skipped_members": {"members": 4, "skipped": 1, "diverged": [{"member": 2, "step": 17}], "ode_failed": []},
        "elapsed_s": 4000.0, "environment": {"jaxdyn": "0.1.0", "jax": "0.10.2"},
    }, indent=2))
    return claims


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    claims_v1 = _new_run(out / "v1" / "saxe-reduction", lr=0.05, preset="quick", jaxdyn_version="0.2.0", flip=False)
    claims_v2 = _new_run(out / "v2" / "saxe-reduction", lr=0.1, preset="quick", jaxdyn_version="0.2.1", flip=True)
    old_claims = _old_run(out / "old" / "rbe-response")
    # A run that crashed: status says so, there is no summary.
    crashed = RunDir(out / "broken", "crashed-run")
    crashed.start({"lr": 0.1})
    crashed.fail(RuntimeError("device lost"))
    # A run started by this (live) process and never finished.
    RunDir(out / "broken", "unfinished-run").start({"lr": 0.1})
    dirs = find_runs([out / "v1", out / "v2", out / "old", out / "broken"])
    page = build_report(dirs, out / "report.html")
    return {"out": out, "page": page, "text": page.read_text(), "claims_v1": claims_v1, "claims_v2": claims_v2,
            "old_claims": old_claims}


class _Tables(HTMLParser):
    """Text of every cell of every table row, by the row's id (rows without one are skipped)."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = {}, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr" and dict(attrs).get("id"):
            self._row = self.rows.setdefault(dict(attrs)["id"], [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _rows(text):
    parser = _Tables()
    parser.feed(text)
    return parser.rows


def test_strings_are_escaped_once_and_raw_numbers_folded(runs):
    text = runs["text"]
    for twice in ("&amp;quot;", "&amp;amp;", "&amp;lt;", "&amp;gt;", "&amp;#34;", "&amp;#39;"):
        assert twice not in text
    assert html.escape(TRICKY, quote=False).replace('"', "&#34;") in text  # jinja2 writes " as &#34;
    assert "<script" not in text  # the injected string is text, not markup
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text
    folded = re.findall(r"<details class=\"raw-numbers\"([^>]*)>\s*<summary>[^<]*</summary>\s*<pre>(.*?)</pre>", text, re.S)
    assert len(folded) == 3, "one closed block per run with a summary"
    assert all("open" not in attrs for attrs, _ in folded)
    # Pretty-printed once: indented JSON, one key a line, parseable after unescaping.
    numbers = [json.loads(html.unescape(body)) for _, body in folded]
    assert numbers[0]["nested"] == {"per_v": [1.0, None, 2.5]} and numbers[0]["note"] == TRICKY
    assert '\n  &#34;max_abs_deviation&#34;: 0.004,\n' in folded[0][1]
    # The old format's top-level numbers, without the keys that are shown elsewhere.
    assert set(numbers[2]) == {"members", "aging_exponent", "label"}


def test_overview_counts_claims_by_kind(runs):
    rows = _rows(runs["text"])
    header = ["run", "experiment", "state", "preset", "seeds", "paper", "extension", "sanity", "unclassified",
              "started", "elapsed", "jaxdyn"]
    assert re.search(r"<thead><tr>" + "".join(rf"<th>{h}</th>\s*" for h in header), runs["text"])
    for label, claims in (("v1-saxe-reduction", runs["claims_v1"]), ("v2-saxe-reduction", runs["claims_v2"])):
        row = dict(zip(header, rows[f"overview-run-{label}"]))
        for kind in ("paper", "extension", "sanity"):
            mine = [c for c in claims if c["kind"] == kind]
            assert row[kind] == f"{sum(c['held'] for c in mine)}/{len(mine)}", (label, kind)
        assert row["unclassified"] == "–"
        assert row["state"] == "complete" and row["preset"] == "quick" and row["seeds"] == "8"
        assert row["started"] == fmt_date(STARTED) and row["elapsed"] == "1 min 15 s"
    old = dict(zip(header, rows["overview-run-rbe-response"]))
    assert old["unclassified"] == "1/2" and old["paper"] == old["sanity"] == "–"
    assert old["preset"] == "n/a" and old["elapsed"] == "1 h 06 min" and old["jaxdyn"] == "0.1.0"
    assert dict(zip(header, rows["overview-run-crashed-run"]))["state"] == "failed"


def test_claims_carry_their_contract_and_anchors(runs):
    text = runs["text"]
    # saxe-reduction is on the page twice: each run's claims carry the run, the bare anchor is the comparison row.
    for claim in runs["claims_v1"]:
        assert f'id="saxe-reduction-{claim["id"]}--v1-saxe-reduction"' in text
        assert f'id="saxe-reduction-{claim["id"]}--v2-saxe-reduction"' in text
        assert f'<tr id="saxe-reduction-{claim["id"]}"' in text
        assert f'href="#saxe-reduction-{claim["id"]}--v1-saxe-reduction"' in text
    # rbe-response is there once, its old claims anchored by their statement.
    assert 'id="rbe-response-the-response-falls-with-hamming-distance-ages"' in text
    card = text[text.index('id="saxe-reduction-beta-exceeds-sqrt2-alpha--v1-saxe-reduction"'):]
    card = card[:card.index("</article>")]
    assert "“quoted beta-exceeds-sqrt2-alpha” <cite>poster, panel 3</cite>" in card
    assert "t &gt; 0 read as every recorded time after the first" in card
    assert re.search(r"<b>0.5</b> \(needs &gt; 0\)\s*<span class=\"source\">threshold: the statement itself</span>", card)
    assert "7/8 seeds held (needs 75%)" in card and "+3.25 SE" in card
    assert "0 → 0.5 at the end" in card and "1 member: 1 member diverged" in card
    assert card.count('class="dot-held"') == 7 and card.count('class="dot-not-held"') == 1
    assert card.count('class="dot-initial"') == 8
    assert "kind-paper" in card and "verdict held" in card
    # The paper's claims first, extensions next, sanity checks apart after the figures.
    run = text[text.index('<section class="run" id="run-v1-saxe-reduction"'):text.index('<section class="run" id="run-v2-saxe-reduction"')]
    order = [run.index(s) for s in ('class="claims claims-paper"', 'class="claims claims-extension"', '<h3>Figures</h3>',
                                    'class="claims claims-sanity sanity"')]
    assert order == sorted(order)
    assert "The paper&#39;s claims: 2 of 2 held" in run and "Sanity checks: 1 of 2 held" in run
    assert "Members: 8; 1 left out of the summary" in run and "member 3: diverged at step 120" in run


def test_figures_are_embedded_with_captions(runs):
    text = runs["text"]
    assert text.count('src="data:image/png;base64,') == 5  # two per new run, one for the old
    embedded = sorted(base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text))
    assert embedded == sorted(p.read_bytes() for p in runs["out"].glob("*/*/*.png"))  # whole files, byte for byte
    assert not re.search(r'src="(?!data:)', text) and "<link" not in text  # nothing to fetch
    assert "<figcaption>alpha(t) and beta(t): simulation (dots) against the ODE (lines) <code>alpha_beta.png</code></figcaption>" in text
    assert 'alt="largest |simulation - theory| over members, per time"' in text
    assert "<figcaption>response_vs_hamming</figcaption>" in text  # old format: the file's stem


def test_comparison_lists_claims_side_by_side_and_what_differs(runs):
    text, rows = runs["text"], _rows(runs["text"])
    cmp = text[text.index('id="compare-saxe-reduction"'):text.index('<section class="run"')]
    assert "compare-rbe-response" not in text  # one run of it: nothing to compare
    flipped = rows["saxe-reduction-follows-the-ode"]
    assert flipped[1].startswith("held") and flipped[2].startswith("not held")
    assert re.search(r'<tr id="saxe-reduction-follows-the-ode" class="differs"', cmp)
    assert re.search(r'<tr id="saxe-reduction-conserved-quantity" class="same"', cmp)
    assert "7/8 seeds" in rows["saxe-reduction-beta-exceeds-sqrt2-alpha"][1]
    diff = cmp[cmp.index('class="config-diff"'):cmp.index("</table>", cmp.index('class="config-diff"'))]
    assert "<code>lr</code></th><td>0.05</td><td>0.1</td>" in diff
    for same in ("preset", "seeds", "num_steps", "tolerance"):
        assert f"<code>{same}</code>" not in diff
    versions = cmp[cmp.index('class="version-diff"'):]
    assert "<th>jaxdyn</th><td>0.2.0</td><td>0.2.1</td>" in versions
    assert "Shared: jax 0.10.2; backend cpu; devices TFRT_CPU_0; python 3.11.7; machine x86_64." in cmp


def test_old_format_and_unfinished_runs_render(runs, tmp_path):
    text = runs["text"]
    old = text[text.index('<section class="run" id="run-rbe-response"'):]
    old = old[:old.index("</section>\n<section")]
    assert "Written in the older run format" in old and "kind-unclassified" in old
    assert "Claims: 1 of 2 held" in old and "the response falls with Hamming distance &amp; ages" in old
    assert "<b>NaN</b> (no numeric threshold)" in old and "<b>0.91</b> (threshold 0.5)" in old  # the old format writes NaN as NaN
    assert "member 2: diverged at step 17" in old
    assert "crashed-run" in text and "RuntimeError: device lost" in text and "state-failed" in text
    unfinished = text[text.index('id="run-unfinished-run"'):]
    assert "state-running" in unfinished[:500] and "it has not finished" in unfinished
    # Damaged status.json: shown as unknown with the reason, not a crash of the whole report.
    damaged = tmp_path / "saxe-reduction"
    shutil.copytree(runs["out"] / "v1" / "saxe-reduction", damaged)
    (damaged / "status.json").write_text("{not json")
    page = render_report([damaged])
    assert "state-unknown" in page and "status.json is not valid JSON" in page


def test_claims_held_that_disagrees_with_the_claims_is_flagged(tmp_path):
    _new_run(tmp_path / "saxe-reduction", lr=0.05, preset="paper", jaxdyn_version="0.2.0", flip=False)
    summary = json.loads((tmp_path / "saxe-reduction" / "summary.json").read_text())
    summary["claims_held"]["paper"] = [1, 2]
    write_json(tmp_path / "saxe-reduction" / "summary.json", summary)
    text = render_report([tmp_path / "saxe-reduction"])
    assert "disagrees with its claims (paper: recorded [1, 2], claims list 2/2)" in text
    assert 'id="saxe-reduction-follows-the-ode"' in text  # one run: the bare anchor is the claim itself
    (tmp_path / "saxe-reduction" / "deviation.png").unlink()
    text = render_report([tmp_path / "saxe-reduction"])
    assert "deviation.png is missing." in text and text.count('src="data:image/png;base64,') == 1
    assert "Comparison:" not in text


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        build_report([tmp_path / "nope"], tmp_path / "r.html")
    with pytest.raises(ValueError, match="run_dirs"):
        build_report([], tmp_path / "r.html")
    (tmp_path / "empty").mkdir()
    assert find_runs([tmp_path / "empty"]) == [tmp_path / "empty"]  # named by build_report, not silently dropped


def test_report_command(runs, tmp_path, capsys):
    from jaxdyn import cli

    assert cli.main(["report", str(runs["out"] / "old"), "--out", str(tmp_path / "r.html")]) == 0
    assert 'id="run-rbe-response"' in (tmp_path / "r.html").read_text()
    assert cli.main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "not a jaxdyn run directory" in capsys.readouterr().err


# Run in the page after load: what a reader sees, written into the DOM for --dump-dom to carry out.
_PROBE = """<script>
addEventListener("load", () => {
  const images = [...document.images];
  const raw = document.querySelector("details.raw-numbers");
  const result = {images: images.length, loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
                  text: document.body.innerText, raw_open: raw.open, raw_height: raw.getBoundingClientRect().height,
                  anchors: ANCHORS.filter(a => document.getElementById(a) !== null)};
  const out = document.createElement("pre"); out.id = "probe"; out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); the HTML is checked above without it")
def test_report_renders_in_headless_chromium(runs, tmp_path):
    anchors = [f"saxe-reduction-{c['id']}--v1-saxe-reduction" for c in runs["claims_v1"]] + ["compare-saxe-reduction", "overview"]
    probed = tmp_path / "probed.html"
    probe = _PROBE.replace("ANCHORS", json.dumps(anchors))
    probed.write_text(runs["text"].replace("</body>", probe + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--window-size=1200,2000"]
    start = time.perf_counter()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=60)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"no probe result after {time.perf_counter() - start:.1f} s: {dom.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["images"] == 5 and seen["loaded"] == 5, seen
    assert seen["anchors"] == anchors
    text = seen["text"]
    assert TRICKY in text and "&quot;" not in text and "&amp;" not in text and "&#34;" not in text
    # The raw numbers are folded: closed, a one-line summary, their JSON not on screen.
    assert seen["raw_open"] is False and seen["raw_height"] < 60, seen["raw_height"]
    assert "max_abs_deviation" not in text and "Raw summary numbers (JSON)" in text
    assert "7/8 seeds held" in text and "alpha(t) and beta(t): simulation (dots) against the ODE (lines)" in text
