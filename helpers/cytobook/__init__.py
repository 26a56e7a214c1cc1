"""Cytobook: helpers behind the notebooks that reproduce five cell-image reports.

The notebooks import from a handful of modules:

- :mod:`cytobook.notebook`: the set-up cell (profile, data, run directory, seeds);
- :mod:`cytobook.datasets`: official layouts, generated look-alike data, checks;
- :mod:`cytobook.preprocess`, :mod:`cytobook.augment`, :mod:`cytobook.splits`;
- :mod:`cytobook.models` (one module per report), :mod:`cytobook.weights`
  (ImageNet weights offline), :mod:`cytobook.training`;
- :mod:`cytobook.evaluation`, :mod:`cytobook.results`, :mod:`cytobook.ensemble`,
  :mod:`cytobook.explain`, :mod:`cytobook.plots`;
- for report 4, :mod:`cytobook.handmade` (nucleus shape and colour features)
  and :mod:`cytobook.lymphocytosis` (patient bags, multi-instance training,
  cross-validation and its read-outs).

:mod:`cytobook.backend` picks an installed Keras backend when the default
(TensorFlow) is not installed. :mod:`cytobook.runner`, :mod:`cytobook.book` and :mod:`cytobook.suite` sit
behind the ``cytobook`` command; :mod:`cytobook.profiles` says what the
``smoke``, ``demo`` and ``full`` profiles mean.
"""

import os as _os

from .backend import choose_backend as _choose_backend

# TensorFlow prints pages of C++ start-up logging on import; keep notebooks clean.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Before any module imports Keras: TensorFlow is an extra, not a dependency (see cytobook.backend).
_choose_backend()

__version__ = "0.1.0"
