"""arreg_core.device: what evaluation shares with training, without importing training."""
import subprocess
import sys
from pathlib import Path

import arreg_core


def test_evaluation_and_the_instruments_do_not_import_training():
    """Evaluating a stored network needs the device helpers, not the training loop: a fresh
    interpreter that imports evaluate and loss_variation has no arreg_core.train."""
    probe = ("import sys, arreg_core.evaluate, arreg_core.loss_variation; "
             "print(sorted(m for m in sys.modules if m.startswith('arreg_core')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=Path(arreg_core.__file__).parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.strip()
    assert "'arreg_core.device'" in loaded and "'arreg_core.evaluate'" in loaded
    assert "'arreg_core.train'" not in loaded, loaded
