"""What a notebook runs: a profile plus the notebook's papermill parameters, turned into trained
runs (trained only when missing) and analysis artifacts (computed only when missing).

    ex = Experiments.from_parameters(profile, runs_dir=runs_dir, device=device, data_root=data_root,
                                     eps=eps_list, datasets=datasets, epochs=epochs)
    sweep = ex.runs("ar_sweep")                  # runs table: config fields + the paper's metrics
    margins = ex.artifacts(sweep, "margins")     # {run name: arrays and meta}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import analysis
from .executors import Job, LocalExecutor
from .profiles import execution_options, experiment_configs, load_profile
from .runs import get_or_train_all, runs_table
from .train import TrainConfig

SCALE_FIELDS = ("dataset", "arch", "width", "n_train", "n_test", "epochs", "batch_size", "lr", "milestones",
                "method", "attack_steps", "attack_step", "augment")


@dataclass
class Experiments:
    profile: str
    runs_dir: Path
    device: str = "auto"
    data_root: str | None = None
    overrides: dict = field(default_factory=dict)
    progress: bool = False

    @classmethod
    def from_parameters(cls, profile: str, runs_dir=None, device="auto", data_root=None, **overrides):
        """`overrides` are the notebook's parameters (None = the profile's value): grid entries
        (datasets, eps, spectral_norms, fgsm_eps, deeper_arch) or TrainConfig fields."""
        runs_dir = Path(runs_dir or load_profile(profile)["runs_dir"])
        kept = {k: v for k, v in overrides.items() if v is not None}
        return cls(profile, runs_dir, device, data_root, kept)

    def configs(self, experiment: str) -> list[TrainConfig]:
        return experiment_configs(self.profile, experiment, **self.overrides)

    def runs(self, experiment: str) -> pd.DataFrame:
        """Every run of `experiment` (trained if missing) as a table, with a `path` column."""
        runs = get_or_train_all(self.configs(experiment), self.runs_dir, device=self.device,
                                **execution_options(self.profile),
                                data_root=self.data_root, progress=self.progress)
        return runs_table(runs)

    def artifacts(self, table: pd.DataFrame, piece: str, params: dict | None = None) -> dict[str, dict]:
        """The `piece` artifact of every run in `table` (computed if missing), by run name."""
        params = {**load_profile(self.profile).get("analysis", {}).get(piece, {}), **(params or {})}
        out = {}
        for path in table["path"]:
            analysis.analyze(path, pieces=(piece,), params={piece: params} if params else None,
                             device=self.device, data_root=self.data_root)
            out[Path(path).name] = analysis.load_artifact(path, piece, params)
        return out

    def scorecard_inputs(self) -> dict:
        """What `scorecard.scorecard` reads, for the first data set of the sweep (CIFAR-10, whose
        published numbers the scorecard compares with): the runs tables of the AR sweep, FGSM and
        spectral-norm experiments (every seed); `examples`, per run with analysis artifacts
        (the sweep's and FGSM's), the per-example columns the bootstrap resamples (margins of
        both splits, loss variation); and `spectra`, per sweep run and layer, the singular-value
        std (Fig. 5c/d, B.2). The spectral-norm runs enter by their metrics only."""
        from .scorecard import example_columns

        dataset = self.configs("ar_sweep")[0].dataset
        runs = {exp: self.runs(exp) for exp in ("ar_sweep", "fgsm", "spectral_norm")}
        runs = {exp: t[t.dataset == dataset].sort_values(["eps", "seed"]) if not t.empty else t
                for exp, t in runs.items()}
        examples: dict[str, dict] = {}
        for experiment, pieces in (("ar_sweep", ("margins", "loss_variation")), ("fgsm", ("margins",))):
            if runs[experiment].empty:
                continue
            for piece in pieces:
                for name, artifact in self.artifacts(runs[experiment], piece).items():
                    examples.setdefault(name, {}).update(example_columns(piece, artifact))
        sweep = runs["ar_sweep"]
        spectra = self.artifacts(sweep, "spectrum") if not sweep.empty else {}
        layers = pd.DataFrame([{"run": r.run, "eps": r.eps, "seed": r.seed, "layer": name, "kind": kind, "std": std}
                               for r in sweep.itertuples()
                               for name, kind, std in zip(spectra[r.run]["name"], spectra[r.run]["kind"],
                                                          spectra[r.run]["std"])])
        return {**runs, "examples": examples, "spectra": layers}

    def scale_table(self, experiment: str) -> pd.DataFrame:
        """This build's settings next to the paper's for `experiment` (every page states its scale)."""
        ours = self.configs(experiment)
        paper = experiment_configs("paper", experiment)
        if not ours:
            return pd.DataFrame()
        rows = {"this build": {f: getattr(ours[0], f) for f in SCALE_FIELDS}}
        if paper:
            rows["paper"] = {f: getattr(paper[0], f) for f in SCALE_FIELDS}
        for name, configs in (("this build", ours), ("paper", paper)):
            if configs:
                rows[name]["AR strengths (eps)"] = sorted({c.eps for c in configs})
        for name, profile in (("this build", self.profile), ("paper", "paper")):
            if name in rows and load_profile(profile)["defaults"].get("attack_step") == "auto":
                rows[name]["attack_step"] = "2.5 eps / attack_steps"
        table = pd.DataFrame(rows)
        table.loc["n_train"] = table.loc["n_train"].map(lambda n: "all" if n is None else n)
        table.loc["n_test"] = table.loc["n_test"].map(lambda n: "all" if n is None else n)
        return table.astype(str)


# Every experiment and the analysis pieces its notebooks read. prepare_profile queues the jobs in
# this order: longest first (the deeper network, then the runs with the Theorem 3.1 bound), so the
# last jobs to finish in parallel workers are short ones.
ANALYSED = {"deeper": (), "ar_sweep": ("margins", "spectrum", "loss_variation", "bound"), "spectral_norm": (),
            "fgsm": ("margins", "spectrum"), "tinyimagenet": ("margins", "spectrum", "loss_variation")}


def prepare_profile(profile: str, workers: int = 2, runs_dir=None, device="auto", data_root=None,
                    experiments=tuple(ANALYSED), executor=None, **overrides) -> list[str]:
    """Train every run of a profile and compute the artifacts its notebooks read, with `executor`
    (arreg_core.executors; default: LocalExecutor(workers), `workers` processes of one torch thread
    each: on 2 cores, two 1-thread runs train more images per second than one 2-thread run for
    small networks). Locks in the run store make this safe beside a notebook or another
    `prepare_profile`. Returns the run names in completion order."""
    ex = Experiments.from_parameters(profile, runs_dir=runs_dir, device=device, data_root=data_root, **overrides)
    profile_params = load_profile(profile).get("analysis", {})
    pieces_of: dict[TrainConfig, tuple] = {}  # a config in several experiments gets all their pieces
    for experiment in experiments:
        for config in ex.configs(experiment):
            known = pieces_of.get(config, ())
            pieces_of[config] = known + tuple(p for p in ANALYSED[experiment] if p not in known)
    jobs = [Job(config, str(ex.runs_dir), device, data_root, pieces,
                {p: profile_params[p] for p in pieces if p in profile_params} or None,
                execution=execution_options(profile))
            for config, pieces in pieces_of.items()]
    executor = executor or LocalExecutor(workers)
    return [result["run"] for result in executor.map(jobs)]
