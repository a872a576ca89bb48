"""thesis_lib: the library behind the companion book to Sevkovych (2023),
"On variational autoencoders: theory and applications".

Importing the package does no work: every module is imported on demand.
"""

__version__ = "0.1.0"
