"""The book's profiles (`profiles.yaml`): `paper` (the paper's settings), `cpu` (the published
book, scaled to 2 CPU cores: its networks fit, but generalise far worse than the paper's), `gpu` (the book's GPU tier: the full CIFAR-10,
trained in lent GPU sessions), `cpu-v1` (the book's first, smaller CPU scale,
kept with its store for the record), `smoke` (generated data, CI) and `class` (the exercises' scale: minutes on a laptop CPU),
expanded into the TrainConfigs of each of the paper's experiments.

Every experiment runs once per training seed of the profile's `seeds` list (TrainConfig.seed:
initialisation, batch order, augmentation and attack starts; the data subset stays the same), or
of its own list in `experiment_seeds` (e.g. one seed for the costly spectral-norm grid); a
`seeds` override applies to every experiment. `experiment_eps` gives an experiment its own AR
strengths the same way (e.g. no standard-training run under spectral normalisation).

Experiments:
    ar_sweep       one network per AR strength eps and data set (Sections 4.1, 4.2, B.3, B.5, D.2)
    tinyimagenet   WRN-50-2 on Tiny-ImageNet, eps 0/4/8/16 (Section 4.1, Table 5; `paper` only)
    deeper         the deeper network of appendix B.4.1 (Fig. 7)
    spectral_norm  every (spectral-norm clip, eps) pair of appendix B.4.2 (Fig. 6, Table 6)
    fgsm           FGSM instead of PGD (appendix B.6, Fig. 9-11, Table 2)
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from importlib.resources import files

import yaml

from .analysis import PIECES
from .train import TrainConfig, compile_mode

PROFILES = ("paper", "cpu", "gpu", "cpu-v1", "smoke", "class")
EXPERIMENTS = ("ar_sweep", "tinyimagenet", "deeper", "spectral_norm", "fgsm")
STEP_OPTIONS = ("channels_last", "compile", "cuda_graphs")  # the execution options of one run's step (`train.fit`)
EXECUTION_KEYS = (*STEP_OPTIONS, "stack")  # how runs are executed, not what they are
GRID_KEYS = ("datasets", "eps", "seeds", "spectral_norms", "spectral_norm_datasets", "fgsm_eps", "deeper_arch")
ENTRY_KEYS = ("description", "runs_dir", "defaults", *GRID_KEYS, "experiment_seeds", "experiment_eps",
              "tinyimagenet", "execution", "analysis", "analysis_seeds")


@dataclass(frozen=True)
class Profile:
    """One profile of profiles.yaml with a notebook's parameters applied, checked once when it is
    loaded (`load_profile`) and handed around in place of its name: the TrainConfigs of every
    experiment (`configs`), how they execute (`execution`), where they are kept (`runs_dir`) and
    what analysis they get (`analysis`, `analysis_seeds`). Read only."""

    name: str
    description: str
    runs_dir: str
    defaults: dict            # the TrainConfig fields the runs share, as written
    grid: dict                # GRID_KEYS as written (lists; deeper_arch: one name)
    configs: dict             # {experiment: its TrainConfigs}, the parameters applied (`experiment_configs`)
    execution: dict           # channels_last, compile, cuda_graphs, stack, the parameters applied (`execution_options`)
    analysis: dict            # {piece: parameters of arreg_core.analysis}
    analysis_seeds: dict      # {piece: the seeds whose runs get it}; unlisted pieces: every seed
    parameters: dict          # the notebook's parameters applied to the entry (None: the profile's value)
    entry: dict = field(repr=False, compare=False)  # the entry as written (book.class_fingerprint hashes it)

    @property
    def step_options(self) -> dict:
        """The execution options one run's training takes (`runs.get_or_train`): all but `stack`."""
        return {key: self.execution[key] for key in STEP_OPTIONS}

    @classmethod
    def from_entry(cls, name: str, entry: dict, **parameters) -> "Profile":
        """A Profile from its profiles.yaml entry and a notebook's `parameters` (grid entries,
        TrainConfig fields or execution options; `experiment_configs`), checked: unknown keys,
        experiments, parameters, execution options or analysis pieces raise ValueError naming the
        profile or the parameter and what is valid."""
        unknown = set(entry) - set(ENTRY_KEYS)
        if unknown:
            raise ValueError(f"profile {name}: unknown entries {sorted(unknown)}; valid: {', '.join(ENTRY_KEYS)}")
        for key in ("experiment_seeds", "experiment_eps"):
            _per_experiment(name, entry, key)
        seeds = entry.get("analysis_seeds") or {}
        if set(seeds) - set(PIECES):
            raise ValueError(f"profile {name}: analysis_seeds names unknown pieces {sorted(set(seeds) - set(PIECES))}; "
                             f"choose from {', '.join(PIECES)}")
        entry = copy.deepcopy(entry)
        parameters = {k: v for k, v in parameters.items() if v is not None}
        return cls(name=name, description=entry.get("description", ""), runs_dir=entry["runs_dir"],
                   defaults=entry["defaults"], grid={k: entry[k] for k in GRID_KEYS if k in entry},
                   configs={e: experiment_configs(entry, e, **parameters) for e in EXPERIMENTS},
                   execution=execution_options(name, entry.get("execution") or {}, **parameters),
                   analysis=entry.get("analysis") or {},
                   analysis_seeds={piece: [int(s) for s in v] for piece, v in seeds.items()},
                   parameters=parameters, entry=entry)


@functools.cache
def _profiles_file() -> dict:
    """profiles.yaml, parsed once per process."""
    with files("arreg_core").joinpath("profiles.yaml").open() as f:
        return yaml.safe_load(f)


@functools.cache
def _as_written(name: str) -> Profile:
    return Profile.from_entry(name, _profiles_file()[name])


def load_profile(profile: str | Profile, **parameters) -> Profile:
    """The profile `profile` (a name in profiles.yaml, or a Profile) with a notebook's
    `parameters` applied (None: the profile's value): the one place a name becomes a profile.
    Each profile as written is loaded and checked once per process."""
    if isinstance(profile, Profile):
        given = {k: v for k, v in parameters.items() if v is not None}
        return Profile.from_entry(profile.name, profile.entry, **{**profile.parameters, **given}) if given else profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if any(v is not None for v in parameters.values()):
        return Profile.from_entry(profile, _profiles_file()[profile], **parameters)
    return _as_written(profile)


def execution_options(name: str, options: dict, **parameters) -> dict:
    """How a profile's runs are executed, beside what they are (not part of the run key):
    `channels_last`, `compile` (torch.compile: true, false or a mode, `train.compile_mode`) and
    `cuda_graphs` (the whole training step as one CUDA graph; CUDA only) and `stack` (up to that
    many runs that differ only in eps, seed, warm-up or clip trained as one network,
    `runs.train_stacked`; 1: each run alone) from the profile's `execution` entry `options`,
    default off; `parameters` with those names (a notebook's or `arreg prepare -p` parameters,
    e.g. stack=8 on a GPU) replace them; other parameters are ignored."""
    options = {**options, **{k: v for k, v in parameters.items() if k in EXECUTION_KEYS and v is not None}}
    unknown = set(options) - set(EXECUTION_KEYS)
    if unknown:
        raise ValueError(f"profile {name}: unknown execution options {sorted(unknown)}; valid: {', '.join(EXECUTION_KEYS)}")
    channels_last, compile = options.get("channels_last", False), options.get("compile", False)
    cuda_graphs = options.get("cuda_graphs", False)
    for key, value in (("channels_last", channels_last), ("cuda_graphs", cuda_graphs)):
        if not isinstance(value, bool):
            raise ValueError(f"profile {name}: {key} {value!r}; valid: true, false")
    if cuda_graphs and compile:
        raise ValueError(f"profile {name}: cuda_graphs and compile both capture the step: choose one")
    try:
        compile_mode(compile)
    except ValueError as err:
        raise ValueError(f"profile {name}: execution {err}") from None
    stack = options.get("stack", 1)
    if isinstance(stack, bool) or not isinstance(stack, int) or stack < 1:
        raise ValueError(f"profile {name}: stack {stack!r}; valid: an integer >= 1, the most runs trained as one "
                         f"network (1: each run alone)")
    if stack > 1 and compile:
        raise ValueError(f"profile {name}: a stack of runs trains eagerly or as CUDA graphs (cuda_graphs), never "
                         f"compiled: drop compile, or set stack=1")
    return {"channels_last": channels_last, "compile": compile, "cuda_graphs": cuda_graphs, "stack": stack}


def experiment_configs(entry: dict, experiment: str, **parameters) -> list[TrainConfig]:
    """The TrainConfigs of one experiment of a profile entry, one per grid point and seed (seed
    outermost, so that a store fills one complete seed first). `parameters` replace the grid
    entries (GRID_KEYS, e.g. seeds=[0, 1, 2]) or any TrainConfig field (e.g. epochs=10): the
    notebooks' papermill parameters end up here. A single `seed` stands for seeds=[seed].
    Execution options (EXECUTION_KEYS) are accepted and left to `execution_options`."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(parameters) - fields - set(GRID_KEYS) - set(EXECUTION_KEYS)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}; use TrainConfig fields, {', '.join(GRID_KEYS)} "
                         f"or {', '.join(EXECUTION_KEYS)}")
    overrides = {k: v for k, v in parameters.items() if v is not None and k not in EXECUTION_KEYS}
    if "seed" in overrides:
        if "seeds" in overrides:
            raise ValueError("give either seed or seeds, not both")
        overrides["seeds"] = [overrides.pop("seed")]
    grid = {**{k: entry[k] for k in GRID_KEYS if k in entry},
            **{k: _grid_value(k, v) for k, v in overrides.items() if k in GRID_KEYS}}
    for key in ("seeds", "eps"):
        own = entry.get(f"experiment_{key}") or {}
        if key not in overrides and experiment in own:  # the profile gives this experiment its own list
            grid[key] = _grid_value(key, own[experiment])
    defaults = entry["defaults"]
    seeds = [int(s) for s in grid.get("seeds") or [defaults.get("seed", TrainConfig.seed)]]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {grid.get('seeds')!r}")
    base = {**defaults, **{k: v for k, v in overrides.items() if k in fields}}

    def configs(datasets, eps_list, **extra):
        return [TrainConfig.from_fields({**base, "dataset": d, "eps": e, **extra, "seed": s})
                for s in seeds for d in datasets for e in eps_list]

    if experiment == "ar_sweep":
        return configs(grid["datasets"], grid["eps"], method="pgd")
    if experiment == "deeper":
        return configs(grid["datasets"], grid["eps"], method="pgd", arch=grid["deeper_arch"])
    if experiment == "fgsm":
        return configs(grid["datasets"], grid["fgsm_eps"], method="fgsm")
    if experiment == "spectral_norm":
        return [c for s in grid["spectral_norms"]
                for c in configs(grid["spectral_norm_datasets"], grid["eps"], method="pgd", spectral_norm=float(s))]
    if not entry.get("tinyimagenet"):
        return []
    tiny = {**entry["tinyimagenet"], **{k: v for k, v in overrides.items() if k in fields}}
    eps_list = tiny.pop("eps")
    return [TrainConfig.from_fields({**base, **tiny, "eps": e, "method": "pgd" if e else "none", "seed": s})
            for s in seeds for e in eps_list]


def parse_list(value) -> list:
    """A list given as a list or tuple, as the YAML text of one (`papermill -p eps "[2, 6]"` and
    `arreg book -p eps=[2,6]` pass the string "[2, 6]"), or as a single value (datasets=cifar10:
    a one-element list). Raises ValueError when the text is not YAML."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"{value!r} is not a list") from err
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _grid_value(name: str, value):
    """A grid override as a list (`parse_list`); `deeper_arch` is a single name, kept as given."""
    if name == "deeper_arch":
        return value
    try:
        return parse_list(value)
    except ValueError as err:
        raise ValueError(f"{name}={value!r} is not a list; write it as [4, 8, 16]") from err


def _per_experiment(name: str, entry: dict, key: str) -> dict:
    """A profile entry's {experiment: list} (`experiment_seeds`, `experiment_eps`), checked."""
    own = entry.get(key) or {}
    unknown = set(own) - set(EXPERIMENTS)
    if unknown:
        raise ValueError(f"profile {name}: {key} names unknown experiments {sorted(unknown)}; "
                         f"choose from {', '.join(EXPERIMENTS)}")
    return own
