"""The ground floor: argument checks, atomic files, paths, configurations and command-line errors.

Torch-free: the book's build imports it without starting torch."""
