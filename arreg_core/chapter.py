"""What every chapter of the book does first, in one call, and the words its computed paragraphs
are made of.

    from arreg_core import chapter, plots, paper
    ex = chapter.setup("ar_sweep", profile, eps=eps, **overrides)

`setup` sets the display options and the plot style, shows this page's scale next to the
paper's in a collapsed "Scale of this page" dropdown and returns the `Experiments` of the
profile, with the machine's settings (device, data root, run store) from the environment
(ARREG_DEVICE, ARREG_DATA, ARREG_RUNS). A notebook's parameters are `profile`, `eps` (the AR
strengths, 0-255 scale) and `overrides` (any other grid entry, TrainConfig field or execution option).

Each chapter's verdict section opens with the scorecard's verdicts for its claims
(`verdicts_section`: one rule, one verdict per claim, with its interval and regime); the trend
words (`values_at_eps`, `direction`, `every_step_goes`, `step_by_step`) then read a metric step by
step over the AR strengths from the runs themselves, as supporting detail, so that a re-run with
other parameters keeps every sentence true. With several seeds per strength they describe the
means and say how many seeds (`step_by_step`: and in how many seeds on its own each step goes the
claimed way). Like the scorecard (`scorecard.adversarial_only`),
a trend is read over the AR strengths (eps > 0) where there are two or more; eps 0, standard
training, is then given beside it as the reference, named so.
Numbers set next to the paper's are taken at the same strength (`next_to_paper`,
`paper_strengths`): CIFAR's published tables have no eps 0. The paragraphs themselves, one
function per claim a chapter reads, are in `findings`.
"""

from __future__ import annotations

import html
import os
import re

import numpy as np
import pandas as pd
from IPython import get_ipython
from IPython.display import HTML, Markdown, display

from . import plots
from .experiments import Experiments
from .profiles import load_profile
from . import paper as paper_tables
from . import verdicts

CLASS_PROFILE = "class"      # the exercises' scale (profiles.yaml): minutes on a laptop CPU
BOOK_BUILD_ENV = "ARREG_BOOK_BUILD"  # set by `arreg book` while it executes the notebooks


def setup(experiments: str | tuple[str, ...], profile: str, eps=None, **overrides) -> Experiments:
    """Display options, the plot style, the "Scale of this page" dropdown for `experiments`
    (one name or several), and the Experiments of `profile` with `eps` and `overrides`."""
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_colwidth", None)
    plots.use_style()
    ex = Experiments.from_environment(profile, eps=eps, **overrides)
    names = (experiments,) if isinstance(experiments, str) else tuple(experiments)
    tables = [(f"{name.replace('_', ' ')}" if len(names) > 1 else "", ex.scale_table(name)) for name in names]
    dropdown("Scale of this page (this build next to the paper)",
             *[part for caption, t in tables for part in ((f"<p><b>{caption}</b></p>",) if caption else ()) + (t,)])
    return ex


def md(*paragraphs: str) -> None:
    """Show each paragraph as Markdown (the computed paragraphs of a chapter, `findings`); an empty one
    shows nothing."""
    for text in paragraphs:
        if text:
            display(Markdown(text))


def dropdown(title: str, *parts) -> None:
    """A collapsed block: `title`, and on click the `parts` (DataFrames or HTML strings)."""
    body = "".join(p.to_html(border=0, classes="dataframe") if isinstance(p, pd.DataFrame) else str(p)
                   for p in parts)
    display(HTML(f'<details class="arreg-dropdown"><summary>{html.escape(title)}</summary>{body}</details>'))


# ----------------------------------------------------------------------------- trend words

def per_eps(table: pd.DataFrame, column: str, x: str = "eps") -> pd.Series:
    """`column` per AR strength (the mean over seeds), indexed by eps in increasing order."""
    return table.groupby(x)[column].mean().sort_index()


def direction(series: pd.Series, tolerance: float = 0.0) -> str:
    """How a series over increasing eps moves: "rises", "falls", "stays flat", "rises, then
    falls" (or the reverse), or "moves up and down". Steps within `tolerance` count as flat."""
    steps = np.diff(np.asarray(series, float))
    signs = [0 if abs(s) <= tolerance else int(np.sign(s)) for s in steps]
    moving = [s for s in signs if s]
    if not moving:
        return "stays flat"
    if all(s > 0 for s in moving):
        return "rises"
    if all(s < 0 for s in moving):
        return "falls"
    changes = [moving[0]] + [b for a, b in zip(moving, moving[1:]) if a != b]
    if len(changes) == 2:
        return "rises, then falls" if changes[0] > 0 else "falls, then rises"
    return "moves up and down"


def _join(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def formatted(value: float, fmt: str = "{:.2f}") -> str:
    """`value` in `fmt`, or with two significant digits where `fmt` would round a nonzero value
    to zero (a training loss of 2.9e-05 is not "0.00")."""
    text = fmt.format(value)
    if value != 0 and np.isfinite(value) and not any(c in "123456789" for c in text.split("e")[0]):
        return f"{value:.2g}"
    return text


def values_at_eps(series: pd.Series, fmt: str = "{:.2f}", unit: str = "") -> str:
    """"5.69 at eps 4, 1.78 at eps 8 and 2.08 at eps 16" (eps 0: "at eps 0 (standard training)")."""
    return _join([f"{formatted(v, fmt)}{unit} at eps {e:g}" + (" (standard training)" if e == 0 else "")
                  for e, v in series.items()])


def seeds_note(table: pd.DataFrame, x: str = "eps") -> str:
    """" (means over 3 seeds)" where a strength has several seeds, " (one seed)" where each has one
    (a trend read from single runs), "" for a table without seeds (the paper's)."""
    if "seed" not in table or table.empty:
        return ""
    counts = table.groupby(x)["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    if high < 2:
        return " (one seed)"
    return f" (means over {low} seeds)" if low == high else f" (means over {low}-{high} seeds)"


def per_seed(table: pd.DataFrame, column: str, fmt: str = "{:g}") -> str:
    """`column` of a table with one row per seed: "6" for one seed, "6 (seed 0) and 5 (seed 1)"."""
    if len(table) == 1:
        return fmt.format(table[column].iloc[0])
    return _join([f"{fmt.format(v)} (seed {s})" for s, v in zip(table["seed"], table[column])])


def over_strengths(series: pd.Series) -> tuple[pd.Series, float | None]:
    """The part of a per-eps series a trend is read over, and the standard-training reference:
    (the AR strengths eps > 0, the value at eps 0) where there are two or more AR strengths and an
    eps 0; else (the whole series, None): with one AR strength, eps 0 is the only comparison."""
    index = np.asarray(series.index, float)
    if (index == 0).any() and (index > 0).sum() >= 2:
        return series[index > 0], float(series[index == 0].iloc[0])
    return series, None


def _reference(value: float | None, fmt: str, unit: str) -> str:
    return "" if value is None else f"; standard training (eps 0): {formatted(value, fmt)}{unit}"


def describe(table: pd.DataFrame, column: str, what: str, fmt: str = "{:.2f}", unit: str = "", x: str = "eps") -> str:
    """"the loss gap falls over the AR strengths: 5.69 at eps 4, ...; standard training (eps 0): 0.4"
    from the runs (means over seeds, and how many)."""
    s, reference = over_strengths(per_eps(table, column, x))
    if len(s) < 2:
        return f"{what} is {values_at_eps(s, fmt, unit)}{seeds_note(table, x)} (one AR strength only: no trend)"
    over = " over the AR strengths" if reference is not None else ""
    return f"{what} {direction(s)}{over}: {values_at_eps(s, fmt, unit)}{seeds_note(table, x)}{_reference(reference, fmt, unit)}"


def trend_direction(table: pd.DataFrame, column: str, x: str = "eps") -> str:
    """`direction` of `column` (means over seeds) over the AR strengths (`over_strengths`)."""
    return direction(over_strengths(per_eps(table, column, x))[0])


def move_together(a: pd.DataFrame, column_a: str, b: pd.DataFrame, column_b: str, claimed: str) -> str:
    """Whether two quantities (means over seeds, over the AR strengths) move the same way at every
    step, and whether that is the `claimed` direction ("falls" or "rises") of both."""
    sa, sb = (over_strengths(per_eps(t, c))[0] for t, c in ((a, column_a), (b, column_b)))
    shared = sa.index.intersection(sb.index)
    if len(shared) < 2:
        return "there is one AR strength only: nothing to compare."
    steps_a, steps_b = np.sign(np.diff(sa[shared].to_numpy())), np.sign(np.diff(sb[shared].to_numpy()))
    if not np.array_equal(steps_a, steps_b):
        return "the two do not move together here."
    how = direction(sa[shared])
    if how == claimed:
        return f"they move together, both {how.replace('rises', 'rising').replace('falls', 'falling')}, as in the paper."
    return (f"they move together step by step (both: {how}), but not in the paper's direction (both should "
            f"{claimed.rstrip('s')}).")


def directions_per_clip(table: pd.DataFrame, column: str, order=("none", "5", "3", "1"), x: str = "eps") -> str:
    """"no clip rises; SN 5 rises; SN 1 falls": the trend of `column` per spectral-norm clip of a
    table with a `spectral_norm` column ("none" or the clip as text), in `order` (capacity
    falling, as in Fig. 6 and Table 6)."""
    return "; ".join(f"{'no clip' if clip == 'none' else 'SN ' + clip} "
                     f"{trend_direction(table[table.spectral_norm == clip], column, x)}"
                     for clip in order if clip in set(table.spectral_norm))


def every_step_goes(series: pd.Series, sign: int) -> bool:
    """Whether every step of the series goes the claimed way (+1 rises, -1 falls)."""
    steps = np.diff(np.asarray(series, float))
    return len(steps) > 0 and bool(np.all(sign * steps > 0))


def step_by_step(what: str, table: pd.DataFrame, column: str, sign: int, fmt: str = "{:.2f}", unit: str = "",
                 x: str = "eps") -> str:
    """The step-by-step reading of one claimed trend, supporting detail under the scorecard's
    verdict (`verdicts_section`), never a verdict of its own: what the runs show (means over
    seeds), whether every step goes the claimed way, and with several seeds in how many of them
    on its own."""
    s, reference = over_strengths(per_eps(table, column, x))
    claimed = "rises" if sign > 0 else "falls"
    if len(s) < 2:
        return f"*Step by step* — {what} (the paper: it {claimed} with AR): only one AR strength, no steps."
    agrees = every_step_goes(s, sign)
    seeds = ([every_step_goes(over_strengths(per_eps(g, column, x))[0], sign) for _, g in table.groupby("seed")]
             if "seed" in table else [agrees])
    note = (f"; every step goes that way in {sum(seeds)} of the {len(seeds)} seeds taken one at a time"
            if len(seeds) > 1 else " (one seed per strength: the steps cannot tell a trend from the variation "
            "between training runs)")
    steps = "between AR strengths " if reference is not None else ""
    over = " over the AR strengths" if reference is not None else ""
    return (f"*Step by step* — {what} (the paper: it {claimed} with AR): it {direction(s)}{over}, "
            f"{values_at_eps(s, fmt, unit)}{seeds_note(table, x)}{_reference(reference, fmt, unit)}. "
            f"{'Every' if agrees else 'Not every'} step {steps}of the means goes the paper's way{note}."
            f"{_within_spread(table, column, s, sign, x)}")


def _within_spread(table: pd.DataFrame, column: str, s: pd.Series, sign: int, x: str = "eps") -> str:
    """A sentence where every step against the claimed direction is smaller than the spread
    between seeds (the larger std over seeds at its two strengths): such a step is noise."""
    if "seed" not in table or table.groupby(x)["seed"].nunique().min() < 2:
        return ""
    std = table.groupby(x)[column].std()
    against = [(a, b) for a, b in zip(s.index, s.index[1:]) if sign * (s[b] - s[a]) <= 0]
    if not against or any(abs(s[b] - s[a]) > max(std[a], std[b]) for a, b in against):
        return ""
    where = _join([f"eps {a:g} to {b:g}" for a, b in against])
    return (f" Its step{'s' if len(against) > 1 else ''} against the paper's direction ({where}) "
            f"{'are' if len(against) > 1 else 'is'} smaller than the spread between seeds: noise, not a reversal.")


def fits_every_strength(table: pd.DataFrame) -> bool:
    """Whether the networks fit their training sets at every AR strength (means over seeds), as
    the paper's do: `verdicts.fits`, the scorecard's regime check."""
    return bool(per_eps(table, "train_acc").map(verdicts.fits).all())


def not_fitting(table: pd.DataFrame) -> str:
    """The AR strengths whose networks do not fit their training sets (means over seeds,
    `verdicts.fits`), with their clean training accuracy: "eps 8 (70.8%) and eps 16 (28.6%)"."""
    acc = per_eps(table, "train_acc")
    return " and ".join(f"eps {e:g} ({a:.1f}%)" for e, a in acc.items() if not verdicts.fits(a))


def _paper_reference(table: pd.DataFrame, arch: str, method: str, spectral_norm: str) -> tuple[pd.DataFrame, str]:
    """The paper's network a table stands in for (one row per eps, floats) and its table's name."""
    if "dataset" not in table or table.empty:
        return pd.DataFrame(), ""
    dataset = paper_tables.dataset(table.dataset.iloc[0])
    try:
        ref = paper_tables.metrics(dataset, arch, method, spectral_norm)
    except ValueError:
        return pd.DataFrame(), ""
    ref.index = ref.index.astype(float)
    return ref, f"Table {paper_tables.results_table(dataset, method, spectral_norm)}"


REGIME_WORDS = {"fit": ("clean training accuracy", "train_acc", None),
                "generalisation": ("test accuracy", "test_acc", "paper_test_acc"),
                "robustness": ("PGD accuracy of the correctly classified test images", "pgd_acc", "paper_pgd_acc")}


def regime_line(table: pd.DataFrame, arch: str = "resnet56", method: str | None = None, spectral_norm: str = "none") -> str:
    """The networks' regime in the scorecard's three parts (`verdicts.NetworkRegime`): fit (clean
    training accuracy), generalisation (test accuracy against the paper's `arch` at the same eps)
    and robustness (PGD accuracy of the correctly classified test images against the paper's), in
    numbers beside the paper's (Tables 2-6), and which parts hold. `method`: the paper's training
    method to compare with (default: the table's, PGD where it has none)."""
    if method is None:
        methods = set(table.method) - {"none"} if "method" in table else set()
        method = methods.pop() if len(methods) == 1 else "pgd"
    means = table.groupby("eps")[[c for c in ("train_acc", "test_acc", "pgd_acc") if c in table]].mean()
    ref, table_no = _paper_reference(table, arch, method, spectral_norm)
    at = lambda e, k: float(ref.loc[float(e)].get(k, np.nan)) if float(e) in ref.index else np.nan  # noqa: E731
    nets = [verdicts.NetworkRegime(f"eps {e:g}", r.get("train_acc", np.nan), r.get("test_acc", np.nan),
                                   r.get("pgd_acc", np.nan), at(e, "test_acc"), at(e, "pgd_acc"))
            for e, r in means.iterrows()]
    shared = [n for n in nets if not np.isnan(n.paper_test_acc)]
    who = f"the paper's {arch}" + (f" with its spectral norm clipped to {spectral_norm}" if spectral_norm != "none" else "")
    parts, outside = [], []
    for part, (what, ours, paper) in REGIME_WORDS.items():
        pool = nets if part == "fit" else shared
        states = [n.part(part) for n in pool]
        if not pool or all(st is None for st in states):
            continue
        bad = [n.label for n, st in zip(pool, states) if st is False]
        if part == "fit":
            published = ref["train_acc"] if "train_acc" in ref else pd.Series(dtype=float)
            beside = f" ({who}: {verdicts.value_range(published)})" if published.notna().any() else ""
        else:
            beside = f" against {verdicts.value_range([getattr(n, paper) for n in pool])} for {who} at the same eps"
        state = "inside" if not bad else f"**outside** at {', '.join(bad)}" if len(bad) < len(pool) else "**outside**"
        parts.append(f"**{part}** ({what}) {verdicts.value_range([getattr(n, ours) for n in pool])}{beside}: {state}")
        if bad:
            outside.append(part)
    text = (f"**Regime** (means over seeds per strength; {table_no or 'no published network to compare'}): "
            + "; ".join(parts) + ".")
    if "fit" in outside:
        text += (f" A network below {verdicts.FIT_THRESHOLD:g}% does not fit its training set: what it shows may come "
                 "from not fitting rather than from the paper's mechanism.")
    if "generalisation" in outside:
        text += ((" These networks memorise their training images but" if "fit" not in outside else " They")
                 + " generalise far worse than the paper's: claims about gaps and test quantities are outside the "
                 "regime the paper makes them in, and the scorecard's verdicts say so.")
    return text


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def verdicts_section(ex: Experiments, chapter: str, n_boot: int = 2000) -> pd.DataFrame:
    """The scorecard's verdicts for the claims of `chapter` (notebooks/NAME.ipynb; `Claim.chapter`),
    one paragraph each: the verdict (and the rule's alone where the regime gate changed it), the
    claim's statistic (mostly the change from the weakest to the strongest AR) with its 95% interval,
    which steps carry a decided change and where standard training goes against it, the regime it
    needs, and the paper's own verdict by the same rule. The step-by-step reading that follows is supporting detail."""
    from . import scorecard as sc

    inputs = sc.inputs(ex)
    card = sc.scorecard(inputs, n_boot=n_boot, chapter=chapter)
    for _, r in card.iterrows():
        shown, rule = r["this build verdict"], r["this build rule verdict"]
        alone = f" (the rule alone: {rule})" if rule != shown else ""
        paper = (f"The paper's numbers: **{r['paper verdict']}**, {r['paper [95% CI]']}." if r["paper verdict"]
                 else "The paper publishes no numbers for it (figure only).")
        regime_ = (f" Regime it needs ({r['needs']}; ranges lowest-highest over the networks): {r['this build regime']}."
                   if r["this build regime"] else "")
        first = r["this build note"].split("; ")[0]
        reversal = f" It {first}." if first.startswith("reverses") else ""
        uneven = "".join(f" {_sentence(r[f'this build {k}'])}." for k in ("steps", "reference") if r[f"this build {k}"])
        md(f"**{r['claim']}** ({r['paper figure']}) — scorecard verdict: **{shown}**{alone}. {_sentence(r['statistic'])} "
           f"[95% interval]: {r['this build [95% CI]'] or 'not run'}.{reversal}{uneven}{regime_} {paper}")
    md(verdicts.CHAPTER_RULE)
    tier_section(ex, inputs, card, chapter, n_boot)
    return card


GPU_TIER = "gpu"
GPU_TIER_HOWTO = ("on a machine with a CUDA GPU, `ARREG_DATA=<folder of cifar10-jpeg.tar.gz> bash benchmarks/gpu_session.sh "
                  "OUT` (about 9 minutes on an H200), then here `arreg import-runs OUT/gpu-runs.part* --runs-dir "
                  "results/gpu/runs` and `make book`")


def gpu_tier_inputs(ex: Experiments) -> dict | None:
    """The scorecard inputs (`scorecard.inputs`) of the `gpu` tier read from its committed store
    beside the executed profile `ex`; None where that tier has no finished run or is the profile
    executed."""
    from . import scorecard as sc

    gpu = None if ex.profile.name == GPU_TIER else Experiments.tier(GPU_TIER)
    return None if gpu is None else sc.inputs(gpu)


def tier_cards(ex: Experiments, inputs: dict, card: pd.DataFrame, chapter: str | None = None, n_boot: int = 2000):
    """({tier: scorecard}, {tier: scorecard inputs}) of the executed profile (`ex`, its scorecard
    `inputs` and `card`) and of the `gpu` tier (`gpu_tier_inputs`), or None where that tier has
    no finished run (or is the profile executed)."""
    from . import scorecard as sc

    gpu_inputs = gpu_tier_inputs(ex)
    if gpu_inputs is None:
        return None
    cards = {f"{ex.profile.name} tier (this build)": card,
             f"{GPU_TIER} tier": sc.scorecard(gpu_inputs, n_boot=n_boot, chapter=chapter)}
    return cards, {f"{ex.profile.name} tier (this build)": inputs, f"{GPU_TIER} tier": gpu_inputs}


def tier_section(ex: Experiments, inputs: dict, card: pd.DataFrame, chapter: str | None = None,
                 n_boot: int = 2000) -> None:
    """The chapter's claims in each tier of the book beside the paper's: this build's (the executed
    profile) and the `gpu` tier's (the paper's attack and optimiser on all of CIFAR-10, cut in depth and
    epochs, trained on a lent GPU), with each tier's regime in numbers; or, where the gpu tier has no
    finished run yet, how to run it."""
    from . import scorecard as sc

    tiers = tier_cards(ex, inputs, card, chapter, n_boot)
    if tiers is None:
        if ex.profile.name != GPU_TIER:
            md(f"**The {GPU_TIER} tier** (the paper's attack and optimiser on all of CIFAR-10, trained on a GPU) "
               f"has no finished runs yet: {GPU_TIER_HOWTO}.")
        return
    cards, inputs = tiers
    gpu_name = f"{GPU_TIER} tier"
    md(f"**Each tier of the book** beside the paper: this build's networks and the {gpu_name}'s (the paper's "
       "attack and optimiser on all 50,000 CIFAR-10 training images, a shallower network trained for fewer epochs on a "
       "GPU), each judged by the same rule, with the regime of each tier's AR sweep in numbers below (each verdict "
       "above names the regime of the networks it rests on).")
    show_html(sc.tier_table(cards))
    md(sc.seeds_line(inputs[gpu_name], tier=f"The {gpu_name}"))
    display(sc.tier_regimes(inputs))
    if (cards[gpu_name]["this build verdict"] != verdicts.NOT_RUN).any():
        md(sc.regime_paragraph(inputs[gpu_name], cards[gpu_name], name=f"The {gpu_name}"))
    else:
        md(f"The {gpu_name} runs none of this chapter's claims: its regime above does not bear on them.")


def regime_tables(ex: Experiments, inputs: dict) -> None:
    """Each network setting's regime (`scorecard.regime_table`, AR strengths only) in each tier of
    the book: this build's (the executed profile `ex`, its scorecard `inputs`) and the `gpu`
    tier's where it has finished runs, each under its name."""
    from . import scorecard as sc

    tiers = {f"{ex.profile.name} tier (this build)": inputs}
    gpu_inputs = gpu_tier_inputs(ex)
    if gpu_inputs is not None:
        tiers[f"{GPU_TIER} tier"] = gpu_inputs
    for name, tier_inputs in tiers.items():
        if len(tiers) > 1:
            md(f"**The {name}**")
        display(sc.display_regime_table(sc.regime_table(sc.adversarial_only(tier_inputs))))


def paper_strengths(eps) -> tuple[float, float]:
    """The two AR strengths the paper compares per layer (Fig. 1a, 5c/d, appendix B.2: 4 and 16)
    where this build has both, else its lowest and highest non-zero ones: standard training
    (eps 0) is no strength the paper draws there. With fewer than two non-zero strengths, the
    lowest and highest there are."""
    strengths = sorted(set(float(e) for e in eps))
    if {4.0, 16.0} <= set(strengths):
        return 4.0, 16.0
    positive = [e for e in strengths if e > 0]
    return (positive[0], positive[-1]) if len(positive) > 1 else (strengths[0], strengths[-1])


def next_to_paper(ours: pd.DataFrame, ref: pd.DataFrame, who: str) -> str:
    """The paper's training and test accuracy next to this build's (means over seeds) at the lowest
    AR strength both have; `ref`: paper.metrics (index eps_train)."""
    published = ref.set_axis(ref.index.astype(float))
    shared = sorted(set(ours.eps.astype(float)) & set(published.index))
    if not shared:
        return (f"{who} has no AR strength in common with this build's "
                f"({', '.join(f'{e:g}' for e in sorted(set(ours.eps)))}): no accuracies to set side by side.")
    e, row = shared[0], published.loc[shared[0]]
    train, test = per_eps(ours, "train_acc")[e], per_eps(ours, "test_acc")[e]
    return (f"{who} reaches {row.train_acc:.2f}% training and {row.test_acc:.2f}% test accuracy at eps {e:g}; "
            f"this build {train:.1f}% and {test:.1f}% at eps {e:g}{seeds_note(ours[ours.eps == e])}.")


def share_between(examples: pd.DataFrame, low: float, high: float) -> pd.DataFrame:
    """Per run (eps, seed) of a per-example table (`Experiments.examples`): the share, in %, of
    values strictly between `low` and `high` (column `share`); e.g. middle-valued probabilities."""
    inside = examples.assign(share=100.0 * examples["value"].astype(float).between(low, high, inclusive="neither"))
    return inside.groupby(["eps", "seed"], as_index=False)["share"].mean()


def spread_changes(spectrum: pd.DataFrame, low: float, high: float, kind: str = "conv") -> pd.DataFrame:
    """Appendix B.2 per network: among the layers of `kind` ("conv" or "linear"), those whose
    singular-value std decreased from AR `low` to `high` and those where it increased — how
    many (`layers`, of `of`), the sum and the mean of the changes. One row per data set, seed and
    group, from the tidy spectrum summary (`Experiments.summary(..., "spectrum")`)."""
    wide = spectrum[spectrum.kind == kind].pivot_table(index=["dataset", "seed", "layer"], columns="eps", values="std")
    diff = wide[low] - wide[high]
    rows = []
    for (dataset, seed), d in diff.groupby(level=["dataset", "seed"]):
        for group, change in (("decreased", d[d > 0]), ("increased", -d[d < 0])):
            rows.append({"dataset": dataset, "seed": seed, "group": group, "layers": len(change), "of": len(d),
                         "sum": change.sum(), "mean": change.mean()})
    return pd.DataFrame(rows)


def spread_table(changes: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Appendix B.2's table: this build's `spread_changes` (the count of layers per seed, the sum
    and mean of the changes as mean ± std over seeds) above the paper's rows (`paper.spread_summary()`)."""
    columns = ["layers", "sum", "mean"]
    ours = plots.mean_std(changes, ["dataset", "group"], columns[1:], "{:.4g}")
    ours["layers"] = changes.sort_values("seed").groupby(["dataset", "group"]).layers.agg(lambda n: ", ".join(map(str, n)))
    ours = ours.reset_index().assign(source="this build")
    paper = published.assign(source="paper", seeds=1, **{c: published[c].map("{:g}".format) for c in columns})
    return stacked(ours, paper)[["dataset", "group", "source", "seeds"] + columns].rename(
        columns={"layers": "layers (per seed)", "sum": "sum of changes", "mean": "mean change"}).set_index(
        ["source", "dataset", "group"])


def in_seeds(holds: pd.Series, yes: str, no: str) -> str:
    """A per-seed condition (a boolean Series indexed by seed) in words: `yes` or `no` for one
    seed; for several, "<yes> in every seed", "<no> in any seed" or "<yes> in 1 of 2 seeds (seed 0)"."""
    if len(holds) == 1:
        return yes if holds.iloc[0] else no
    if holds.all():
        return f"{yes} in every seed"
    if not holds.any():
        return f"{no} in any seed"
    return f"{yes} in {int(holds.sum())} of {len(holds)} seeds (seed {', '.join(str(s) for s in holds.index[holds])})"


def against_standard(table: pd.DataFrame, column: str, what: str, fmt: str = "{:.1f}", unit: str = "%") -> str:
    """The weakest AR strength against standard training (eps 0) on `column`: "The test accuracy at
    the weakest AR (eps 4) is 38.6% against 35.7% with standard training (means over 3 seeds):
    higher in every seed"; "" without an eps-0 run."""
    s = per_eps(table, column)
    if 0 not in s.index or not (s.index > 0).any():
        return ""
    weakest = float(s.index[s.index > 0].min())
    pairs = table[table.eps.isin([0, weakest])].pivot_table(index="seed", columns="eps", values=column).dropna()
    higher = pairs[weakest] > pairs[0]
    return (f"{what} at the weakest AR (eps {weakest:g}) is {formatted(s[weakest], fmt)}{unit} against "
            f"{formatted(s[0], fmt)}{unit} with standard training (eps 0){seeds_note(table[table.eps.isin([0, weakest])])}: "
            + in_seeds(higher, "higher", "not higher"))


def zero_layers(sigma: pd.DataFrame, names) -> list[str]:
    """Where a convolution's smallest singular value is exactly 0, from one row per run
    (`Experiments.arrays(..., "bound", "sigma_min")`; `names`: the layers' names), one phrase per
    set of such layers: "blocks.1.conv2 at eps 0, 4 and 16", a strength followed by the seeds
    where not all of its seeds have them ("eps 8 (seed 1)")."""
    seeds_of = sigma.groupby("eps")["seed"].nunique()
    found: dict[tuple, dict] = {}
    for eps, seed, values_ in zip(sigma.eps, sigma.seed, sigma.value):
        zero = tuple(str(n) for n, v in zip(names, values_) if v <= 0)
        if zero:
            found.setdefault(zero, {}).setdefault(eps, []).append(seed)
    return [f"{_join([layer_words(n) for n in layers])} at eps " + _join([
                f"{e:g}" + ("" if len(seeds) == seeds_of[e] else f" (seed {', '.join(str(s) for s in sorted(seeds))})")
                for e, seeds in sorted(runs.items())])
            for layers, runs in found.items()]


def skew_comparison(margins: pd.DataFrame) -> str:
    """Appendix B.3: at which strengths the training margins are more skewed than the test margins,
    in magnitude (|skewness|, whichever the tail; means over seeds), from a margins summary with
    `split` and `skewness`: "at eps 0, 4 and 8, not at eps 16 (0.50 vs 1.49)"."""
    skew = margins.pivot_table(index="eps", columns="split", values="skewness").abs()
    larger = skew.index[skew["train"] > skew["test"]]
    smaller = skew.index[skew["train"] <= skew["test"]]
    if larger.empty:
        return "at no strength"
    text = f"at eps {_join([f'{e:g}' for e in larger])}"
    if smaller.empty:
        return text
    return (f"{text}, not at eps {_join([f'{e:g}' for e in smaller])} ("
            + "; ".join(f"{skew.loc[e, 'train']:.2f} vs {skew.loc[e, 'test']:.2f}" for e in smaller) + ")")


def layer_words(name: str) -> str:
    """A layer's module name for a reader: "blocks.1.conv2" -> "the second convolution of residual
    block 2 (blocks.1.conv2)"; other names unchanged."""
    match = re.fullmatch(r"blocks\.(\d+)\.conv(\d)", name)
    if not match:
        return name
    block, conv = int(match.group(1)) + 1, int(match.group(2))
    return f"the {['first', 'second'][conv - 1] if conv <= 2 else f'{conv}th'} convolution of residual block {block} ({name})"


def bound_gap(bound: pd.DataFrame) -> str:
    """How far Theorem 3.1's lower bound on the margin (eq. 5, with each layer's smallest non-zero
    singular value) sits below the smallest margin measured among the correctly classified
    examples, over the networks of a `bound` summary; "" where there is nothing to compare."""
    if not {"u_min_bound_nonzero", "empirical_u_min"} <= set(bound.columns):
        return ""
    b = bound[["u_min_bound_nonzero", "empirical_u_min"]].astype(float).dropna()
    b = b[(b.u_min_bound_nonzero > 0) & (b.empirical_u_min > 0)]
    if b.empty:
        return ""
    orders = np.log10(b.empirical_u_min / b.u_min_bound_nonzero)
    return (f"Even with each layer's smallest non-zero singular value, the bound on the smallest margin (eq. 5) is "
            f"{b.u_min_bound_nonzero.min():.1e} to {b.u_min_bound_nonzero.max():.1e}, against a measured smallest "
            f"margin (a logit difference, Definition 3) of {b.empirical_u_min.min():.2g} to {b.empirical_u_min.max():.2g} "
            f"among the correctly classified examples: "
            + (f"{np.floor(orders.min()):.0f} or more orders of magnitude below. The bound holds and says nothing about "
               "these networks." if orders.min() > 0 else
               "for some networks the bound lies above the measured margin, which eq. 5 as read here does not allow."))


# ----------------------------------------------------------------------------- exercises

SCHEDULE_FIELDS = ("epochs", "milestones", "eps_warmup_epochs")  # an exercise may shorten the class schedule


_noted_cell = None  # the execution count of the last cell `exercise` spoke in


def _first_call_in_cell() -> bool:
    """Whether this is the first call from the IPython cell now running (always True outside IPython)."""
    global _noted_cell
    shell = get_ipython()
    if shell is None:
        return True
    first, _noted_cell = _noted_cell != shell.execution_count, shell.execution_count
    return first


def exercise(profile: str, experiment: str = "ar_sweep", **overrides) -> Experiments | None:
    """The runs of one exercise cell: `experiment` at the `class` scale (`smoke` when the book is
    the smoke one, as in CI, with the class scale's seeds and smoke's own schedule: the overrides
    in SCHEDULE_FIELDS are the class scale's), with `overrides` (e.g. eps=[2, 16]); trained now if
    missing. While `arreg book` builds a book of another profile it trains nothing and returns
    None, saying how to run the cell (the book renders from its committed run store alone)."""
    scale = "smoke" if profile == "smoke" else CLASS_PROFILE
    if os.environ.get(BOOK_BUILD_ENV) and scale != "smoke":
        if _first_call_in_cell():  # a cell may call this more than once: say it once
            md(f"*Not run while the book was built. In Jupyter, this cell trains what it needs at the "
               f"`{scale}` scale (profiles.yaml) and prints its networks' regime line first.*")
        return None
    if scale == "smoke":  # smoke stands in for the class scale: its seeds, smoke's own (short) schedule
        overrides = {k: v for k, v in overrides.items() if k not in SCHEDULE_FIELDS}
        if "seed" not in overrides:
            overrides.setdefault("seeds", load_profile(CLASS_PROFILE).grid["seeds"])
    ex = Experiments.from_environment(scale, **overrides)
    ex.runs(experiment)
    table = ex.metrics(experiment)
    if table.empty:
        return ex
    arch = "resnet110" if experiment == "deeper" else "resnet56"
    groups = ([(f"{c:g}", g) for c, g in table.groupby(table.spectral_norm.astype(float))]
              if experiment == "spectral_norm" else [("none", table)])
    for clip, group in groups:
        md(regime_line(group, arch=arch, spectral_norm=clip))
    return ex


def stacked(*parts) -> pd.DataFrame:
    """One table from DataFrames and lists of row dicts, stacked in order."""
    return pd.concat([p if isinstance(p, pd.DataFrame) else pd.DataFrame(p) for p in parts], ignore_index=True)


def show_html(text: str) -> None:
    """Show `text` as HTML (a table laid out by arreg_core, e.g. `scorecard.html_table`)."""
    display(HTML(text))


def regime_summary(ex: Experiments) -> None:
    """This build's regime and the gpu tier's, each in numbers beside the paper's (the scorecard's
    regime paragraphs), and the scorecard's verdict counts (`scorecard.summary_line`), shown here
    and glued as `regime`, `gpu_regime` and `verdicts` for the hand-written intro, which pastes
    them with the glue directive (`:doc: /chapters/overview.ipynb`)."""
    from myst_nb import glue
    from markdown_it import MarkdownIt

    from . import scorecard as sc

    inputs, gpu = sc.inputs(ex), gpu_tier_inputs(ex)
    texts = {"regime": sc.regime_paragraph(inputs),
             "gpu_regime": (sc.regime_paragraph(gpu, name=f"The {GPU_TIER} tier", consequences=False) if gpu else
                            f"**The {GPU_TIER} tier** has no finished runs yet: {GPU_TIER_HOWTO}."),
             "verdicts": f"**The verdicts** (the scorecard's, `{ex.profile.name}` profile). "
                         + sc.summary_line(sc.scorecard(inputs))}
    for key, text in texts.items():
        md(text)
        glue(key, HTML(MarkdownIt().render(text)), display=False)
