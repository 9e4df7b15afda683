"""arreg_core: the thin core behind the arreg book (Wen, Li & Jia, ICML 2020).

The public API, importable from the package itself:
    TrainConfig (train), get_or_train (runs), load_data (data), build_model (models),
    pgd_linf and fgsm (attacks), analyze and load_artifact (analysis).

One module per concept, in three layers:
    the core: data, models, attacks, train, cuda_graphs (the training step as one CUDA graph),
        stacked (several runs trained as one network), evaluate, runs (the run store), manifest
        (the sha256 of a store's files), transfer (a store packed into bounded parts and verified
        on import), io (atomic writes and JSON), device (the device, bf16, seeded generators),
        executors, cli;
    the paper's measurements: margins, spectrum, spectral_clip, loss_variation, bound,
        analysis (artifacts per run);
    the book: profiles, experiments, chapter, findings, plots, paper, scorecard, verdicts, performance,
        gpu_sessions (where the lent GPU sessions' files are), book.

The names above load their module on first use (PEP 562), so importing a module of the package,
e.g. arreg_core.evaluate, imports neither training nor the analysis instruments.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {"TrainConfig": "train", "get_or_train": "runs", "load_data": "data", "build_model": "models",
           "pgd_linf": "attacks", "fgsm": "attacks", "analyze": "analysis", "load_artifact": "analysis"}

__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
