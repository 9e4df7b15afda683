"""arreg_core: the thin core behind the arreg book (Wen, Li & Jia, ICML 2020).

One module per concept: data, models, attacks, train, evaluate, runs, spectrum,
spectral_clip, cli.
"""

__version__ = "0.1.0"
