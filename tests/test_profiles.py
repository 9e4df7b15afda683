import dataclasses

import pytest

from arreg_core.profiles import EXPERIMENTS, PROFILES, Profile, load_profile
from arreg_core.train import TrainConfig


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_profile_resolves_to_valid_configs(profile, experiment):
    configs = load_profile(profile).configs[experiment]
    if (experiment == "tinyimagenet" and profile != "paper") or (profile == "gpu" and experiment != "ar_sweep"):
        assert configs == []  # Tiny-ImageNet is the paper profile's alone; the gpu tier is the AR sweep
    else:
        assert configs and len(set(configs)) == len(configs)


def test_paper_profile_is_the_papers_settings():
    sweep = load_profile("paper").configs["ar_sweep"]
    assert {(c.dataset, c.eps) for c in sweep} == {(d, e) for d in ("cifar10", "cifar100") for e in (4, 8, 16)}
    c = sweep[0]
    assert (c.arch, c.epochs, c.batch_size, c.lr, c.milestones, c.attack_steps, c.attack_step, c.n_train) == \
        ("resnet56", 200, 256, 0.05, (100, 150), 10, 2.0, None)
    assert {c.arch for c in load_profile("paper").configs["deeper"]} == {"resnet110"}
    sn = load_profile("paper").configs["spectral_norm"]
    assert {(c.spectral_norm, c.eps) for c in sn} == {(s, e) for s in (1.0, 3.0, 5.0) for e in (4, 8, 16)}
    assert {c.method for c in load_profile("paper").configs["fgsm"]} == {"fgsm"}
    tiny = load_profile("paper").configs["tinyimagenet"]
    assert [(c.arch, c.eps, c.method, c.epochs, c.lr, c.milestones) for c in tiny][:2] == [
        ("wrn50_2", 0.0, "none", 90, 0.1, (30, 60)), ("wrn50_2", 4.0, "pgd", 90, 0.1, (30, 60))]


def test_overrides_reach_the_configs():
    configs = load_profile("smoke", eps=[2, 6], epochs=1, seeds=[0]).configs["ar_sweep"]
    assert [(c.eps, c.epochs) for c in configs] == [(2.0, 1), (6.0, 1)]
    with pytest.raises(ValueError, match="unknown parameters"):
        load_profile("smoke", learning_rate=0.1).configs["ar_sweep"]
    with pytest.raises(ValueError, match="choose one of"):
        load_profile("tpu")


def test_auto_attack_step_is_madrys_rule():
    assert TrainConfig.from_fields({"eps": 8, "attack_steps": 4, "attack_step": "auto"}).attack_step == 5.0
    assert TrainConfig.from_fields({"eps": 0, "attack_step": "auto"}).method == "none"


def test_grid_overrides_given_as_strings_as_papermill_passes_them():
    """`papermill -p eps_list "[2, 6]"` hands the notebook the string "[2, 6]"."""
    as_string = load_profile("smoke", eps="[2, 6]", datasets="synthetic", seeds="[0]").configs["ar_sweep"]
    as_list = load_profile("smoke", eps=[2, 6], datasets=["synthetic"], seeds=[0]).configs["ar_sweep"]
    assert as_string == as_list and [c.eps for c in as_list] == [2, 6]
    assert [c.eps for c in load_profile("smoke", fgsm_eps=4, seeds=[0]).configs["fgsm"]] == [4]
    with pytest.raises(ValueError, match=r"write it as \[4, 8, 16\]"):
        load_profile("smoke", eps="[2, 6").configs["ar_sweep"]


def test_every_profile_lists_its_seeds_and_seed_0_keeps_todays_configs():
    """Seeds expand every experiment; seed 0 is the default TrainConfig.seed, so the run keys of
    the committed stores stay what they were before profiles listed seeds."""
    from arreg_core.runs import run_key

    for profile in PROFILES:
        assert 0 in load_profile(profile).grid["seeds"]
    one = load_profile("cpu-v1").configs["ar_sweep"]
    assert {c.seed for c in one} == {0}
    without_seeds = {k: v for k, v in load_profile("cpu-v1").entry.items() if k != "seeds"}
    assert [run_key(c) for c in Profile.from_entry("cpu-v1", without_seeds).configs["ar_sweep"]] == \
        [run_key(c) for c in one]


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e != "tinyimagenet"])
def test_seeds_expand_every_experiment_and_are_overridable(experiment):
    one = load_profile("smoke", seeds=[0]).configs[experiment]
    three = load_profile("smoke", seeds=[0, 1, 2]).configs[experiment]
    assert len(three) == 3 * len(one) and len(set(three)) == len(three)
    assert [c for c in three if c.seed == 0] == one  # seed 0 configs are unchanged
    assert {c.seed for c in three} == {0, 1, 2}
    assert load_profile("smoke", seeds="[0, 1, 2]").configs[experiment] == three  # as papermill passes it
    assert {c.seed for c in load_profile("smoke", seed=5).configs[experiment]} == {5}


def test_seeds_are_validated():
    with pytest.raises(ValueError, match="either seed or seeds"):
        load_profile("smoke", seed=1, seeds=[0, 1]).configs["ar_sweep"]
    with pytest.raises(ValueError, match="distinct"):
        load_profile("smoke", seeds=[1, 1]).configs["ar_sweep"]


def test_execution_options_default_off_and_reach_the_jobs(monkeypatch, tmp_path):
    """A profile's `execution` entry (channels_last, compile) travels with every job of
    `arreg prepare`; it is not part of any run key. Unknown options are one clear error, when the
    profile is loaded."""
    from arreg_core import experiments

    assert load_profile("cpu-v1").execution == {"channels_last": False, "compile": False, "cuda_graphs": False,
                                                "stack": 1}
    assert load_profile("cpu").execution == {"channels_last": True, "compile": False, "cuda_graphs": False, "stack": 1}
    assert load_profile("gpu").execution == {"channels_last": True, "compile": False, "cuda_graphs": True, "stack": 1}
    entry = load_profile("smoke").entry
    smoke = Profile.from_entry("smoke", {**entry, "execution": {"channels_last": True}})
    assert smoke.execution == {"channels_last": True, "compile": False, "cuda_graphs": False, "stack": 1}
    seen = []

    class Recorder:
        def map(self, jobs, progress=None):
            seen.extend(jobs)
            return [{"run": job.name} for job in jobs]

    experiments.prepare_profile(smoke, runs_dir=tmp_path, executor=Recorder(), experiments=("fgsm",))
    assert seen and all(job.execution == {"channels_last": True, "compile": False, "cuda_graphs": False}
                        for job in seen)
    with pytest.raises(ValueError, match="profile smoke: unknown execution options"):
        Profile.from_entry("smoke", {**entry, "execution": {"amp": True}})
    assert Profile.from_entry("smoke", {**entry, "execution": {"compile": "reduce-overhead"}}).execution["compile"] == \
        "reduce-overhead"
    with pytest.raises(ValueError, match="valid: true, false, default, reduce-overhead"):
        Profile.from_entry("smoke", {**entry, "execution": {"compile": "graphs"}})


def test_execution_overrides_replace_the_profiles_and_leave_the_runs_alone():
    """`arreg book -p compile=reduce-overhead -p channels_last=true` (or a notebook's overrides):
    how the runs execute changes, which runs they are does not."""
    assert load_profile("smoke", channels_last=True, compile="reduce-overhead", eps=[4]).execution == \
        {"channels_last": True, "compile": "reduce-overhead", "cuda_graphs": False, "stack": 1}
    assert load_profile("smoke", channels_last=True, compile=True).configs["ar_sweep"] == \
        load_profile("smoke").configs["ar_sweep"]
    with pytest.raises(ValueError, match="channels_last 'yes'"):
        load_profile("smoke", channels_last="yes").execution
    assert load_profile("smoke", stack=4).execution["stack"] == 4
    assert load_profile("smoke", stack=4).configs == load_profile("smoke").configs
    for bad in (0, 2.5, True, "4x"):
        with pytest.raises(ValueError, match="stack .*valid: an integer >= 1"):
            load_profile("smoke", stack=bad)
    with pytest.raises(ValueError, match="never compiled: drop compile, or set stack=1"):
        load_profile("smoke", stack=3, compile=True)


def test_experiment_seeds_give_an_experiment_its_own_seeds_and_a_seeds_override_wins():
    """cpu: three seeds on the AR sweep and FGSM, one on the deeper network and spectral
    norms; `-p seeds=[...]` applies to every experiment; the same for experiment_eps."""
    profile = load_profile("cpu")
    counts = {e: {c.seed for c in load_profile(profile).configs[e]} for e in ("ar_sweep", "fgsm", "deeper", "spectral_norm")}
    assert counts == {"ar_sweep": {0, 1, 2}, "fgsm": {0, 1, 2}, "deeper": {0}, "spectral_norm": {0}}
    assert {c.seed for c in load_profile(profile, seeds=[3, 4]).configs["deeper"]} == {3, 4}
    assert {c.eps for c in load_profile(profile).configs["ar_sweep"]} == {0, 4, 8, 16}
    assert {c.eps for c in load_profile(profile).configs["spectral_norm"]} == {4, 8, 16}  # experiment_eps
    assert {c.eps for c in load_profile(profile, eps=[0, 2]).configs["deeper"]} == {0, 2}  # an eps override wins
    with pytest.raises(ValueError, match="profile cpu: experiment_eps names unknown experiments"):
        Profile.from_entry("cpu", {**profile.entry, "experiment_eps": {"sn": [4]}})
    with pytest.raises(ValueError, match="profile cpu: experiment_seeds names unknown experiments"):
        Profile.from_entry("cpu", {**profile.entry, "experiment_seeds": {"sn": [0]}})
    with pytest.raises(ValueError, match="profile cpu: unknown entries"):
        Profile.from_entry("cpu", {**profile.entry, "seed": [0]})


def test_scale_rows_name_every_setting_a_run_depends_on():
    """The pages' scale tables: readable rows over all of an experiment's configs, the attack's
    settings over the adversarially trained ones, FGSM's one step of size eps, seeds counted."""
    from arreg_core.experiments import scale_rows

    sweep = scale_rows(load_profile("cpu").configs["ar_sweep"])
    assert sweep["training method"] == "standard training (eps 0), PGD"
    assert sweep["AR strengths (eps, 0-255 scale)"] == "0, 4, 8, 16"
    assert sweep["training seeds"] == "3 (seeds 0, 1, 2)"
    assert sweep["attack steps"] == "3" and sweep["attack step (0-255 scale)"] == "6.667"
    assert sweep["eps warm-up (epochs)"] == "50" and sweep["training precision"] == "bf16"
    assert sweep["weight decay"] == "0.0005" and sweep["training images"] == "500"
    assert sweep["data set"] == "cifar10-jpeg (CIFAR-10 re-encoded as JPEG)"
    fgsm = scale_rows(load_profile("cpu").configs["fgsm"])
    assert fgsm["attack steps"] == "1 (FGSM)" and fgsm["attack step (0-255 scale)"] == "eps (FGSM)"
    assert fgsm["FGSM random start"] == "no"
    assert "FGSM random start" not in sweep
    paper = scale_rows(load_profile("paper").configs["ar_sweep"])
    assert paper["training seeds"] == "1 (seed 0)" and paper["training images"] == "all"
    assert paper["eps warm-up (epochs)"] == "none (constant eps)" and paper["training method"] == "PGD"
    assert scale_rows(load_profile("smoke").configs["ar_sweep"], auto_step=True)["attack step (0-255 scale)"] == \
        "2.5 eps / attack steps"
    clipped = scale_rows(load_profile("cpu").configs["spectral_norm"])
    assert clipped["spectral-norm clips"] == "1, 3, 5" and clipped["training seeds"] == "1 (seed 0)"


def test_the_gpu_tier_is_the_papers_cifar10_setting_cut_in_depth_and_epochs():
    """The `gpu` profile: the full cifar10-jpeg sets with pad-crop-flip, the paper's attack (PGD-10
    x 2/255), batch 256, optimizer and strengths (eps 0/4/8/16), a ResNet-20, the AR sweep only;
    its runs execute as one CUDA graph per step where there is a GPU."""
    configs = load_profile("gpu").configs["ar_sweep"]
    assert [(c.seed, c.eps) for c in configs] == [(s, e) for s in (0, 1, 2) for e in (0, 4, 8, 16)]
    for c in configs:
        assert (c.dataset, c.arch, c.n_train, c.n_test, c.augment) == ("cifar10-jpeg", "resnet20", None, None, True)
        assert (c.batch_size, c.lr, c.momentum, c.weight_decay) == (256, 0.05, 0.9, 5e-4)
        assert c.method == "none" or (c.attack_steps, c.attack_step, c.eps_warmup_epochs) == (10, 2.0, 0)
        assert c.milestones == (c.epochs // 2, 3 * c.epochs // 4)
    assert all(not load_profile("gpu").configs[e] for e in EXPERIMENTS if e != "ar_sweep")
    assert load_profile("gpu", cuda_graphs=False).execution["cuda_graphs"] is False
    with pytest.raises(ValueError, match="choose one"):
        load_profile("gpu", compile=True).execution


def test_a_list_given_as_text_is_parsed_in_one_place():
    from arreg_core.profiles import parse_list

    assert parse_list("[2, 6]") == [2, 6] and parse_list((4, 8)) == [4, 8] and parse_list("cifar10") == ["cifar10"]
    assert parse_list(8) == [8] and parse_list([0, 8]) == [0, 8]
    with pytest.raises(ValueError, match="is not a list"):
        parse_list("[2,")


def test_a_profile_is_loaded_once_and_handed_around_read_only():
    """profiles.yaml is parsed and each profile checked once per process; a Profile passed where
    a name is expected is taken as it is; a notebook's parameters give a new Profile (on top of
    the ones it already has), never change the one loaded (the next caller sees it as written)."""
    from arreg_core import profiles

    smoke = load_profile("smoke")
    parsed, loaded = profiles._profiles_file.cache_info().misses, profiles._as_written.cache_info().misses
    assert load_profile("smoke") is smoke and load_profile(smoke) is smoke
    assert (profiles._profiles_file.cache_info().misses, profiles._as_written.cache_info().misses) == (parsed, loaded)
    before = smoke.configs["ar_sweep"]
    changed = load_profile(smoke, epochs=1, eps=[99], seeds=[7])
    assert [(c.epochs, c.eps, c.seed) for c in changed.configs["ar_sweep"]] == [(1, 99, 7)]
    assert changed.parameters == {"epochs": 1, "eps": [99], "seeds": [7]}
    assert load_profile(changed, epochs=2).parameters == {"epochs": 2, "eps": [99], "seeds": [7]}  # on top
    assert load_profile("smoke") is smoke and smoke.configs["ar_sweep"] == before and 99 not in smoke.grid["eps"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.runs_dir = "elsewhere"
