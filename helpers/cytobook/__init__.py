"""Cytobook: helpers behind the notebooks that reproduce five cell-image reports.

The notebooks import from a handful of modules: :mod:`cytobook.datasets`
(official layouts, generated data, checks), :mod:`cytobook.preprocess`,
:mod:`cytobook.splits`, :mod:`cytobook.weights` (ImageNet weights offline),
:mod:`cytobook.profiles`, :mod:`cytobook.notebook` (the set-up cell) and
:mod:`cytobook.plots`. :mod:`cytobook.runner` and :mod:`cytobook.book` sit
behind the ``cytobook`` command.
"""

import os as _os

# TensorFlow prints pages of C++ start-up logging on import; keep notebooks clean.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
