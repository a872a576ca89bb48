"""thesis_lib: the library behind the companion book to Sevkovych (2023),
"On variational autoencoders: theory and applications".

Flat modules, each named after what it holds, in three layers that import only downwards (the
layering is checked by ``tests/test_architecture.py``):

- ground: ``validation``, ``files``, ``paths``, ``config``;
- the thesis's mathematics: ``activations``, ``networks``, ``risk``, ``optimizers``, ``image_ops``,
  ``losses``, ``divergences``, ``autoencoders``, ``pca``, ``vae``, ``metrics``;
- the machinery that trains, stores and publishes: ``data``, ``models``, ``training``,
  ``checkpoints``, ``runs``, ``experiments``, ``process``, ``provenance``, ``plotting``,
  ``image_plots``, ``diagrams``, ``chapter``, ``comparisons``.

Importing the package does no work: every module is imported on demand, and no module changes the
process (threads, floating-point mode, allocator) unless an entry point asks it to
(:mod:`thesis_lib.process`).
"""

__version__ = "0.1.0"
