"""thesis_lib: the library behind the companion book to Sevkovych (2023),
"On variational autoencoders: theory and applications".

Five layers, one folder each; a module imports only its own layer and the layers below it
(``tests/test_architecture.py`` reads the layers from these folders):

- ``ground``: argument checks, atomic files, paths, configurations, command-line errors;
- ``mathematics``: what the thesis defines and states (activations, networks, risks, optimisers,
  image operators, losses, divergences, autoencoders, PCA, the VAE, its metrics);
- ``runtime``: what trains, stores and evaluates models (data, the training loop, checkpoints, runs,
  the process settings, provenance, the comparisons of trained models with PCA);
- ``publishing``: what the chapters show (figures, diagrams, the seeds' tables, a chapter's first
  cell); it knows the book, the layers below do not;
- ``reproduction``: every experiment by name (``experiments``), the command line that regenerates
  their checkpoints (``regenerate``), the likelihoods, the headline results of each seed
  (``headlines``), and the task graph that retrains them all and computes those results (``tasks``,
  run on Dask by ``reproduce``, reported by ``reproduce_report``).

Publishing and reproduction sit side by side on the runtime and do not import each other.
The mathematics has short names: ``from thesis_lib import vae`` is ``thesis_lib.mathematics.vae``.

Importing the package does no work: every module is imported on demand, and no module changes the
process (threads, floating-point mode, allocator) unless an entry point asks it to
(:mod:`thesis_lib.runtime.process`).
"""

import importlib
from pathlib import Path

__version__ = "0.1.0"

_MATHEMATICS = Path(__file__).resolve().parent / "mathematics"


def __getattr__(name: str):
    """``thesis_lib.vae`` and ``from thesis_lib import vae``: a module of the mathematics, by its short name."""
    if not name.startswith("_") and (_MATHEMATICS / f"{name}.py").is_file():
        return importlib.import_module(f"thesis_lib.mathematics.{name}")
    raise AttributeError(f"module 'thesis_lib' has no attribute {name!r}")
