"""What a notebook runs: a profile plus the notebook's papermill parameters, turned into trained
runs (trained only when missing) and analysis artifacts (computed only when missing).

    ex = Experiments.from_environment("cpu", eps=[2, 6])  # a profile (or its name); device, data, store: ARREG_*
    ex.metrics("ar_sweep")                       # tidy: one row per run (dataset, eps, seed, metrics)
    ex.summary("ar_sweep", "margins")            # tidy: one row per run and split (margin statistics)
    ex.examples("ar_sweep", "margins", "test_margin") # tidy: one row per example of every run (eps, seed, value)
    ex.by_eps("ar_sweep", "margins", "test_margin")   # {eps: per-example array} of one seed

Every tidy table keeps a `seed` column, so that several seeds per configuration stay apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis
from .executors import Job, LocalExecutor, Progress, run_stack
from .paper import UNSTATED
from .profiles import Profile, load_profile
from .runs import (PREPARE_LOG, get_or_train_all, load_run, resolve_store, run_path, runs_table, stack_groups,
                   train_stacked)
from .train import TrainConfig

ID_COLUMNS = ("run", "dataset", "arch", "method", "spectral_norm", "eps", "seed")
# The rows of a page's scale table: a TrainConfig field and how a reader names it.
SCALE_ROWS = {
    "dataset": "data set", "arch": "network", "width": "width (x the base channels)",
    "n_train": "training images", "n_test": "test images", "augment": "augmentation (pad-4 crop + flip)",
    "epochs": "epochs", "batch_size": "batch size", "lr": "learning rate",
    "milestones": "learning rate x0.1 at epochs", "momentum": "momentum", "weight_decay": "weight decay",
    "precision": "training precision", "method": "training method", "eps": "AR strengths (eps, 0-255 scale)",
    "eps_warmup_epochs": "eps warm-up (epochs)", "attack_steps": "attack steps",
    "attack_step": "attack step (0-255 scale)", "fgsm_random_start": "FGSM random start",
    "spectral_norm": "spectral-norm clips", "seed": "training seeds",
}
ATTACK_FIELDS = ("attack_steps", "attack_step", "fgsm_random_start", "eps_warmup_epochs")
METHOD_NAMES = {"none": "standard training (eps 0)", "pgd": "PGD", "fgsm": "FGSM"}
FGSM_ATTACK = {"attack_steps": "1 (FGSM)", "attack_step": "eps (FGSM)"}  # FGSM: one step of size eps
DATASET_NAMES = {"cifar10-jpeg": "cifar10-jpeg (CIFAR-10 re-encoded as JPEG)", "synthetic": "synthetic (generated images)"}


def _scale_value(field: str, values: list, auto_step: bool) -> str | None:
    """One cell of a scale table: the distinct values a field takes over an experiment's configs."""
    distinct = list(dict.fromkeys(tuple(v) if isinstance(v, list) else v for v in values))
    if not distinct:
        return None
    if field == "seed":
        return f"{len(distinct)} (seed{'s' if len(distinct) > 1 else ''} {', '.join(map(str, sorted(distinct)))})"
    if field == "eps":
        return ", ".join(f"{e:g}" for e in sorted(distinct))
    if field == "attack_step" and auto_step:
        return "2.5 eps / attack steps"
    words = {None: {"n_train": "all", "n_test": "all", "spectral_norm": "none"}.get(field, "none"),
             True: "yes", False: "no"}
    def word(v):
        if field == "method":
            return METHOD_NAMES.get(v, v)
        if field == "dataset":
            return DATASET_NAMES.get(v, v)
        if field == "eps_warmup_epochs" and v == 0:
            return "none (constant eps)"
        if isinstance(v, tuple):
            return ", ".join(map(str, v))
        if isinstance(v, float):
            return f"{v:.4g}"
        return words[v] if (v is None or isinstance(v, bool)) else str(v)
    return ", ".join(word(v) for v in (sorted(distinct, key=str) if field == "spectral_norm" else distinct))


def scale_rows(configs: list[TrainConfig], auto_step: bool = False) -> dict[str, str]:
    """A profile's settings for one experiment, one readable row per TrainConfig field, over all
    its configs: the attack's fields over the adversarially trained ones only (FGSM: one step of
    size eps), several values joined (`auto_step`: attack_step is 2.5 eps / attack steps)."""
    rows = {}
    adversarial = [c for c in configs if c.method != "none"]
    for f, label in SCALE_ROWS.items():
        if f == "fgsm_random_start":
            values = [c.fgsm_random_start for c in adversarial if c.method == "fgsm"]
        elif f in ("attack_steps", "attack_step"):
            pgd = _scale_value(f, [getattr(c, f) for c in adversarial if c.method == "pgd"], auto_step)
            fgsm = FGSM_ATTACK[f] if any(c.method == "fgsm" for c in adversarial) else None
            if pgd or fgsm:
                rows[label] = ", ".join(v for v in (pgd, fgsm) if v)
            continue
        else:
            values = [getattr(c, f) for c in (adversarial if f in ATTACK_FIELDS else configs)]
        value = _scale_value(f, values, auto_step)
        if value is not None:
            rows[label] = value
    return rows


# Every experiment and the analysis pieces its notebooks read. `Experiments.prepare` queues the jobs in
# this order: longest first (the deeper network, then the runs with the Theorem 3.1 bound), so the
# last jobs to finish in parallel workers are short ones.
ANALYSED = {"deeper": ("margins",), "ar_sweep": ("margins", "spectrum", "loss_variation", "bound"),
            "spectral_norm": ("margins",),
            "fgsm": ("margins", "spectrum"), "tinyimagenet": ("margins", "spectrum", "loss_variation")}


@dataclass
class Experiments:
    profile: Profile
    runs_dir: Path
    device: str = "auto"
    data_root: str | None = None
    progress: bool = False
    read_only: bool = False  # read the store's finished runs and artifacts; train and analyse nothing
    _tables: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_parameters(cls, profile: Profile | str, runs_dir=None, device="auto", data_root=None, **overrides):
        """`overrides` are the notebook's parameters (None = the profile's value), applied to the
        profile (`profiles.load_profile`): grid entries (datasets, eps, spectral_norms, fgsm_eps,
        deeper_arch), TrainConfig fields or execution options (channels_last, compile, cuda_graphs,
        stack: how the runs train, not which runs they are). `runs_dir` defaults to `store(profile)`."""
        profile = load_profile(profile, **overrides)
        return cls(profile, Path(runs_dir) if runs_dir else store(profile), device, data_root)

    @classmethod
    def from_environment(cls, profile: Profile | str, **overrides) -> "Experiments":
        """The machine's settings from the environment, not from every notebook: ARREG_DEVICE
        (auto | cpu | cuda; default auto), ARREG_DATA (data root), ARREG_RUNS (run store; default
        the profile's `runs_dir`). `overrides` as in `from_parameters`."""
        return cls.from_parameters(profile, device=os.environ.get("ARREG_DEVICE") or "auto",
                                   data_root=os.environ.get("ARREG_DATA") or None, **overrides)

    def configs(self, experiment: str) -> list[TrainConfig]:
        if experiment not in self.profile.configs:
            raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(self.profile.configs)}")
        return self.profile.configs[experiment]

    @classmethod
    def tier(cls, name: str) -> "Experiments | None":
        """A tier of the book read beside the executed profile (the `gpu` tier, trained on lent GPUs):
        the profile `name` over its committed store (its `runs_dir`, never $ARREG_RUNS), read only;
        None where that store holds no finished run of the profile."""
        profile = load_profile(name)
        ex = cls(profile, resolve_store(profile.runs_dir), read_only=True)
        return ex if not ex.runs("ar_sweep").empty else None

    def prepare(self, workers: int = 2, experiments=tuple(ANALYSED), executor=None) -> list[str]:
        """Train every run of the profile and compute the artifacts its notebooks read, with
        `executor` (arreg_core.executors; default: LocalExecutor(workers), `workers` processes of
        one torch thread each: on 2 cores, two 1-thread runs train more images per second than one
        2-thread run for small networks). Locks in the run store make this safe beside a notebook
        or another `prepare`. Each start, finished run and end is appended to the store's build
        log (runs.PREPARE_LOG; `executors.store_wall_time` adds up its wall time) when there is
        anything to train or analyse. Returns the run names in completion order."""
        unknown = set(experiments) - set(ANALYSED)
        if unknown:
            raise ValueError(f"unknown experiments {sorted(unknown)}; choose from {', '.join(ANALYSED)}")
        params, seeds_of = self.profile.analysis, self.profile.analysis_seeds
        pieces_of: dict[TrainConfig, tuple] = {}  # a config in several experiments gets all their pieces
        for experiment in experiments:
            for config in self.configs(experiment):
                known = pieces_of.get(config, ())
                pieces_of[config] = known + tuple(p for p in ANALYSED[experiment] if p not in known
                                                  and config.seed in seeds_of.get(p, [config.seed]))
        jobs = [Job(config, str(self.runs_dir), self.device, self.data_root, pieces,
                    {p: params[p] for p in pieces if p in params} or None, execution=self.profile.step_options)
                for config, pieces in pieces_of.items()]
        executor = executor or LocalExecutor(workers)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        progress = Progress(len(jobs), log=self.runs_dir / PREPARE_LOG if any(map(_has_work, jobs)) else None,
                            about={"profile": self.profile.name, "experiments": list(experiments),
                                   "executor": type(executor).__name__, "workers": getattr(executor, "workers", None),
                                   "overrides": self.profile.parameters})
        done = []
        try:  # first the runs that train as one stack (execution option `stack`), then the rest
            for group in self._stack_groups([job.config for job in jobs]):
                for result in run_stack([job for job in jobs if job.config in group]):
                    progress.done(result)
                    done.append(result["run"])
        except BaseException:
            progress.close()
            raise
        rest = [job for job in jobs if job.name not in done]
        return done + [result["run"] for result in executor.map(rest, progress)]

    def _stack_groups(self, configs: list[TrainConfig]) -> list[list[TrainConfig]]:
        """With the execution option `stack` > 1, the runs of `configs` not yet finished that train
        as one network (`runs.stack_groups`: the same but for eps, seed, warm-up or clip, stopped at
        the same epoch; `runs.train_stacked`), a way to fill a GPU that one narrow CIFAR ResNet
        leaves waiting on kernel launches (benchmarks/gpu_step_matrix.py, "stacked")."""
        if self.read_only or self.profile.execution["stack"] < 2:
            return []
        return stack_groups(configs, self.runs_dir, self.profile.execution["stack"])

    def runs(self, experiment: str) -> pd.DataFrame:
        """Every run of `experiment` (trained if missing; read only: the finished ones) as a table,
        with a `path` column."""
        if experiment not in self._tables:
            if self.read_only:
                runs = [run for c in self.configs(experiment) if (run := load_run(run_path(c, self.runs_dir)))]
            else:
                for group in self._stack_groups(self.configs(experiment)):
                    train_stacked(group, self.runs_dir, device=self.device, data_root=self.data_root,
                                  channels_last=self.profile.execution["channels_last"],
                                  cuda_graphs=self.profile.execution["cuda_graphs"])
                runs = get_or_train_all(self.configs(experiment), self.runs_dir, device=self.device,
                                        **self.profile.step_options,
                                        data_root=self.data_root, progress=self.progress)
            self._tables[experiment] = runs_table(runs)
        return self._tables[experiment].copy()

    def artifacts(self, table: pd.DataFrame, piece: str, params: dict | None = None) -> dict[str, dict]:
        """The `piece` artifact of every run in `table` (computed if missing), by run name."""
        params = {**self.profile.analysis.get(piece, {}), **(params or {})}
        out = {}
        for path in table["path"]:
            if not self.read_only:
                analysis.analyze(path, pieces=(piece,), params={piece: params} if params else None,
                                 device=self.device, data_root=self.data_root)
            out[Path(path).name] = analysis.load_artifact(path, piece, params)
        return out

    # ------------------------------------------------------------------ tidy tables for the chapters

    def datasets(self, experiment: str) -> list[str]:
        """The data sets of `experiment`, in the profile's order."""
        return list(dict.fromkeys(c.dataset for c in self.configs(experiment)))

    def metrics(self, experiment: str, dataset: str | None = None) -> pd.DataFrame:
        """One row per run of `experiment` (of `dataset`, if given): its identifying columns
        (ID_COLUMNS), the paper's metrics, train_error and test_error (100 - accuracy), robust_acc
        (the share of *all* test images correct both clean and under PGD: test_acc x pgd_acc / 100,
        pgd_acc counting the clean-correct ones, App. D.2), path; sorted by dataset, spectral norm,
        eps and seed."""
        t = self.runs(experiment)
        if t.empty:
            return t
        if dataset is not None:
            t = t[t.dataset == dataset]
        t = t.assign(train_error=100 - t.train_acc, test_error=100 - t.test_acc, robust_acc=t.test_acc * t.pgd_acc / 100)
        order = [c for c in ("dataset", "spectral_norm", "eps", "seed") if c in t]
        return t.sort_values(order, na_position="first").reset_index(drop=True)

    def analysed_seeds(self, piece: str) -> list[int] | None:
        """The seeds whose runs get `piece` (the profile's `analysis_seeds`, e.g. the Theorem 3.1
        bound on one seed where the budget allows no more); None: every seed."""
        return self.profile.analysis_seeds.get(piece)

    def _analysed(self, runs: pd.DataFrame, piece: str) -> pd.DataFrame:
        seeds = self.analysed_seeds(piece)
        return runs[runs.seed.isin(seeds)] if seeds is not None and not runs.empty else runs

    def summary(self, experiment: str, piece: str, dataset: str | None = None) -> pd.DataFrame:
        """The `piece` artifact's summary of every run, tidy: ID_COLUMNS and
        margins          one row per split: accuracy, mean_loss, mean_prob and the margin
                         statistics (mean, std, skewness, median, frac_near_zero, frac_negative, n)
        loss_variation   one row per attack strength eps_attack: mean, std
        spectrum         one row per layer (1-based `layer`, `name`, `kind`): std, max, min
        bound            one row: the scalar terms of eq. (5)
        Only the runs of the piece's analysed seeds (`analysed_seeds`) have rows."""
        runs = self._analysed(self.metrics(experiment, dataset), piece)
        if runs.empty:
            return pd.DataFrame()
        artifacts = self.artifacts(runs, piece)
        rows = []
        for r in runs.itertuples():
            ids = {c: getattr(r, c) for c in ID_COLUMNS}
            a = artifacts[r.run]
            s = a["meta"]["summary"]
            if piece == "margins":
                rows += [{**ids, "split": split, **{k: v for k, v in s[split].items() if k != "margin"},
                          **{k: v for k, v in s[split]["margin"].items() if k != "t"}} for split in ("train", "test")]
            elif piece == "loss_variation":
                rows += [{**ids, "eps_attack": e, "mean": m, "std": sd} for e, m, sd in zip(s["eps"], s["mean"], s["std"])]
            elif piece == "spectrum":
                rows += [{**ids, "layer": i + 1, "name": str(a["name"][i]), "kind": str(a["kind"][i]),
                          "std": float(a["std"][i]), "max": float(a["max"][i]), "min": float(a["min"][i])}
                         for i in range(len(a["std"]))]
            elif piece == "bound":
                rows.append({**ids, **{k: float(v) if isinstance(v, str) else v for k, v in s.items()
                                       if not isinstance(v, (list, dict))}})
            else:
                raise ValueError(f"unknown piece {piece!r}; choose one of {', '.join(analysis.PIECES)}")
        return pd.DataFrame(rows)

    def arrays(self, experiment: str, piece: str, key: str, dataset: str | None = None) -> pd.DataFrame:
        """One row per run of one data set (default: the first): eps, seed, run and, in column
        `value`, the `key` array of its `piece` artifact (e.g. "test_margin", "sigma_min"); only
        the runs of the piece's analysed seeds (`analysed_seeds`)."""
        runs = self._analysed(self.metrics(experiment, dataset or self.datasets(experiment)[0]), piece)
        if runs.empty:
            return pd.DataFrame(columns=["eps", "seed", "run", "value"])
        artifacts = self.artifacts(runs, piece)
        return pd.DataFrame({"eps": runs.eps.astype(float), "seed": runs.seed, "run": runs.run,
                             "value": [np.asarray(artifacts[run][key]) for run in runs.run]})

    def examples(self, experiment: str, piece: str, key: str, dataset: str | None = None) -> pd.DataFrame:
        """The `key` array of every run (`arrays`) as one row per element: eps, seed, value; what
        plots.histograms_by_eps draws with every seed."""
        return self.arrays(experiment, piece, key, dataset).drop(columns="run").explode("value", ignore_index=True)

    def by_eps(self, experiment: str, piece: str, key: str, dataset: str | None = None,
               seed: int | None = None) -> dict[float, np.ndarray]:
        """{eps: the `key` array of the `piece` artifact} for one data set (default: the first)
        and one seed (default: the lowest), e.g. by_eps("ar_sweep", "margins", "test_margin")."""
        runs = self.arrays(experiment, piece, key, dataset)
        if runs.empty:
            return {}
        runs = runs[runs.seed == (runs.seed.min() if seed is None else seed)]
        return dict(zip(runs.eps, runs.value))

    def scale_table(self, experiment: str) -> pd.DataFrame:
        """This build's settings next to the paper's for `experiment` (every page states its scale):
        one row per setting (`scale_rows`), columns "this build" and "paper"; the paper's settings it
        does not state are marked so, with the value the `paper` profile assumes (`paper.UNSTATED`)."""
        columns = {}
        paper = load_profile("paper")
        for name, profile, configs in (("this build", self.profile, self.configs(experiment)),
                                       ("paper", paper, paper.configs[experiment])):
            if configs:
                auto = profile.defaults.get("attack_step") == "auto"
                columns[name] = scale_rows(configs, auto_step=auto)
        if "this build" not in columns:
            return pd.DataFrame()
        for f, words in UNSTATED.items():
            if SCALE_ROWS[f] in columns.get("paper", {}):
                columns["paper"][SCALE_ROWS[f]] = words.format(columns["paper"][SCALE_ROWS[f]])
        labels = [label for label in SCALE_ROWS.values() if any(label in c for c in columns.values())]
        return pd.DataFrame(columns).reindex(labels).fillna("-")


def _has_work(job: Job) -> bool:
    """Whether a job trains or analyses anything (a store already complete gets no build-log lines)."""
    path = run_path(job.config, job.runs_dir)
    params = job.analysis_params or {}
    return not (path / "metrics.json").exists() or any(
        not analysis.artifact_path(path, piece, params.get(piece)).exists() for piece in job.pieces)


def store(profile: Profile) -> Path:
    """The run store of `profile`: $ARREG_RUNS where set, else the profile's `runs_dir`; a relative
    one is relative to the checkout (`runs.resolve_store`), for the CLI, the book and the notebooks alike."""
    return resolve_store(os.environ.get("ARREG_RUNS") or profile.runs_dir)


def prepare_profile(profile: Profile | str, workers: int = 2, runs_dir=None, device="auto", data_root=None,
                    experiments=tuple(ANALYSED), executor=None, **overrides) -> list[str]:
    """`Experiments.prepare` of the profile `profile` with `overrides` (`arreg prepare`)."""
    ex = Experiments.from_parameters(profile, runs_dir=runs_dir, device=device, data_root=data_root, **overrides)
    return ex.prepare(workers, experiments, executor)
