"""TrainConfig refuses, in one line naming the valid range, every value that would train without
complaint and mean nothing; the committed profiles still build."""
import math

import pytest

from arreg_core.profiles import EXPERIMENTS, PROFILES, load_profile
from arreg_core.train import TrainConfig

BASE = dict(dataset="synthetic", arch="resnet8", epochs=4, milestones=(2,), method="pgd", eps=8,
            attack_steps=2, attack_step=4)


@pytest.mark.parametrize("kw, match", [
    (dict(eps=math.nan), "eps must be >= 0"),
    (dict(eps=math.inf), "at most 255"),
    (dict(eps=256), "at most 255"),
    (dict(lr=math.nan), "lr must be a number > 0"),
    (dict(lr=-0.1), "lr must be a number > 0"),
    (dict(momentum=math.nan), r"momentum must be in \[0, 1\)"),
    (dict(momentum=-0.5), r"momentum must be in \[0, 1\)"),
    (dict(momentum=1.0), r"momentum must be in \[0, 1\)"),
    (dict(lr_gamma=0), r"lr_gamma must be in \(0, 1\]"),
    (dict(lr_gamma=1.5), r"lr_gamma must be in \(0, 1\]"),
    (dict(milestones=(-1,)), "milestones must be sorted epochs in 1..3"),
    (dict(milestones=(3, 2)), "milestones must be sorted"),
    (dict(milestones=(4,)), "milestones must be sorted epochs in 1..3"),
    (dict(attack_steps=0), "method pgd needs attack_steps >= 1"),
    (dict(attack_step=0), "method pgd needs attack_step > 0"),
    (dict(attack_step=-2), "method pgd needs attack_step > 0"),
    (dict(weight_decay=-1), "weight_decay must be a number >= 0"),
    (dict(epochs=2.5), "epochs must be an integer, got 2.5"),
    (dict(eps="8"), "eps must be a number, got '8' .a string"),
    (dict(eps=[8]), "eps must be a number"),
    (dict(augment="yes"), "augment must be true or false"),
    (dict(n_train=0), "n_train must be a positive integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(milestones=5), "milestones must be a list of integers"),
])
def test_meaningless_values_are_refused_naming_the_range(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        TrainConfig(**{**BASE, **kw})
    assert "\n" not in str(err.value)


def test_valid_edge_values_and_integral_floats():
    assert TrainConfig(**{**BASE, "epochs": 4.0}).epochs == 4 and type(TrainConfig(**{**BASE, "epochs": 4.0}).epochs) is int
    assert TrainConfig(**{**BASE, "eps": 255, "momentum": 0, "lr_gamma": 1}).eps == 255
    assert TrainConfig(**{**BASE, "method": "fgsm", "attack_steps": 0}).attack_steps == 0  # unused by FGSM
    assert TrainConfig(**{**BASE, "milestones": [1, 1, 3]}).milestones == (1, 1, 3)
    assert TrainConfig(**{**BASE, "eps": 0, "attack_steps": 0}).method == "none"
    # the default (the paper's) schedule keeps the milestones a shorter run reaches
    assert TrainConfig().milestones == (100, 150) and TrainConfig(epochs=120).milestones == (100,)
    assert TrainConfig(dataset="synthetic", epochs=1).milestones == ()


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_and_epochs_override_still_builds(profile):
    for experiment in EXPERIMENTS:
        load_profile(profile).configs[experiment]
        # `-p epochs=1` (the book's CI call): milestones past the last epoch are dropped, not refused
        for config in load_profile(profile, epochs=1).configs[experiment]:
            assert config.milestones == ()
