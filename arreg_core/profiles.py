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
from importlib.resources import files

import yaml

from .device import resolve_precision
from .train import TrainConfig, compile_mode, milestones_reached

PROFILES = ("paper", "cpu", "gpu", "cpu-v1", "smoke", "class")
EXPERIMENTS = ("ar_sweep", "tinyimagenet", "deeper", "spectral_norm", "fgsm")


@functools.cache
def _profiles_file() -> dict:
    """profiles.yaml, parsed once per process."""
    with files("arreg_core").joinpath("profiles.yaml").open() as f:
        return yaml.safe_load(f)


def load_profile(name: str) -> dict:
    """The profile called `name` from profiles.yaml: a copy, the caller's to change."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return copy.deepcopy(_profiles_file()[name])


EXECUTION_KEYS = ("channels_last", "compile", "cuda_graphs")  # how runs are executed, not what they are


def execution_options(name: str, **overrides) -> dict:
    """How a profile's runs are executed, beside what they are (not part of the run key):
    `channels_last`, `compile` (torch.compile: true, false or a mode, `train.compile_mode`) and
    `cuda_graphs` (the whole training step as one CUDA graph; CUDA only) from the profile's
    `execution` entry, default off; `overrides` with those names (a notebook's or
    `arreg book -p` parameters, e.g. compile="reduce-overhead" on a GPU) replace them; other
    overrides are ignored."""
    options = load_profile(name).get("execution") or {}
    unknown = set(options) - set(EXECUTION_KEYS)
    if unknown:
        raise ValueError(f"profile {name}: unknown execution options {sorted(unknown)}; valid: {', '.join(EXECUTION_KEYS)}")
    options = {**options, **{k: v for k, v in overrides.items() if k in EXECUTION_KEYS and v is not None}}
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
    return {"channels_last": channels_last, "compile": compile, "cuda_graphs": cuda_graphs}


def make_config(fields: dict) -> TrainConfig:
    """A TrainConfig from profile fields; `attack_step: auto` becomes 2.5 * eps / attack_steps,
    `precision: auto` bf16 where this machine computes it natively, else fp32, and milestones at
    or after the last epoch (an `epochs` override below them) are dropped: they never change the
    learning rate of a trained epoch; an eps warm-up longer than the run is cut to the run."""
    fields = dict(fields)
    if "precision" in fields:
        fields["precision"] = resolve_precision(fields["precision"])
    if fields.get("attack_step") == "auto":
        steps = fields.get("attack_steps", TrainConfig.attack_steps)
        eps = fields.get("eps", TrainConfig.eps)
        fields["attack_step"] = round(2.5 * eps / steps, 4) if eps else TrainConfig.attack_step
    epochs = fields.get("epochs", TrainConfig.epochs)
    if isinstance(epochs, int) and "milestones" in fields:  # `-p epochs=1`: drop the milestones never reached
        fields["milestones"] = milestones_reached(fields["milestones"], epochs)
    if isinstance(epochs, int) and isinstance(fields.get("eps_warmup_epochs"), int):  # and warm up for at most all
        fields["eps_warmup_epochs"] = min(fields["eps_warmup_epochs"], epochs)
    return TrainConfig.from_dict(fields)


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


def _per_experiment(profile: dict, key: str) -> dict:
    """A profile's {experiment: list} entry (`experiment_seeds`, `experiment_eps`), checked."""
    own = profile.get(key) or {}
    unknown = set(own) - set(EXPERIMENTS)
    if unknown:
        raise ValueError(f"{key} names unknown experiments {sorted(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    return own


GRID_KEYS = ("datasets", "eps", "seeds", "spectral_norms", "spectral_norm_datasets", "fgsm_eps", "deeper_arch")


def experiment_configs(profile: str | dict, experiment: str, **overrides) -> list[TrainConfig]:
    """The TrainConfigs of one experiment under a profile, one per grid point and seed (seed
    outermost, so that a store fills one complete seed first). `overrides` replace the profile's
    grid entries (GRID_KEYS, e.g. seeds=[0, 1, 2]) or any TrainConfig field (e.g. epochs=10): the
    notebooks' papermill parameters end up here. A single `seed` stands for seeds=[seed].
    Execution options (EXECUTION_KEYS) are accepted and left to `execution_options`."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
    p = load_profile(profile) if isinstance(profile, str) else dict(profile)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - fields - set(GRID_KEYS) - set(EXECUTION_KEYS)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}; use TrainConfig fields, {', '.join(GRID_KEYS)} "
                         f"or {', '.join(EXECUTION_KEYS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None and k not in EXECUTION_KEYS}
    if "seed" in overrides:
        if "seeds" in overrides:
            raise ValueError("give either seed or seeds, not both")
        overrides["seeds"] = [overrides.pop("seed")]
    p.update({k: _grid_value(k, v) for k, v in overrides.items() if k in GRID_KEYS})
    for grid, own in (("seeds", _per_experiment(p, "experiment_seeds")), ("eps", _per_experiment(p, "experiment_eps"))):
        if grid not in overrides and experiment in own:  # the profile gives this experiment its own list
            p[grid] = _grid_value(grid, own[experiment])
    seeds = [int(s) for s in p.get("seeds") or [p["defaults"].get("seed", TrainConfig.seed)]]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {p.get('seeds')!r}")
    base = {**p["defaults"], **{k: v for k, v in overrides.items() if k in fields}}

    def configs(datasets, eps_list, **extra):
        return [make_config({**base, "dataset": d, "eps": e, **extra, "seed": s})
                for s in seeds for d in datasets for e in eps_list]

    if experiment == "ar_sweep":
        return configs(p["datasets"], p["eps"], method="pgd")
    if experiment == "deeper":
        return configs(p["datasets"], p["eps"], method="pgd", arch=p["deeper_arch"])
    if experiment == "fgsm":
        return configs(p["datasets"], p["fgsm_eps"], method="fgsm")
    if experiment == "spectral_norm":
        return [c for s in p["spectral_norms"]
                for c in configs(p["spectral_norm_datasets"], p["eps"], method="pgd", spectral_norm=float(s))]
    tiny = p.get("tinyimagenet")
    if not tiny:
        return []
    tiny = {**tiny, **{k: v for k, v in overrides.items() if k in fields}}
    eps_list = tiny.pop("eps")
    return [make_config({**base, **tiny, "eps": e, "method": "pgd" if e else "none", "seed": s})
            for s in seeds for e in eps_list]
