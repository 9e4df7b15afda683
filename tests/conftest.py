import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def cifar10_jpeg_root() -> Path:
    """The folder holding cifar10-jpeg.tar.gz, from ARREG_DATA. Skips without it, except where
    ARREG_REQUIRE_DATA=1 (CI), where a missing archive is an error."""
    root = os.environ.get("ARREG_DATA")
    if root and (Path(root) / "cifar10-jpeg.tar.gz").exists():
        return Path(root)
    message = "cifar10-jpeg archive not found: set ARREG_DATA to the folder holding cifar10-jpeg.tar.gz"
    if os.environ.get("ARREG_REQUIRE_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def no_leaked_global_torch_state():
    """A test (or the code it calls) must not leave autograd switched off for the tests after it."""
    yield
    assert torch.is_grad_enabled(), "autograd was left disabled"
