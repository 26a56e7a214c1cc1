"""Test-session set-up shared by the unit tests and the nbval notebook tests.

Every notebook runs with the ``smoke`` profile, and all notebooks of one
session share one run directory, so that later notebooks find the artefacts of
earlier ones exactly as in ``cytobook run``.
"""

import os
import tempfile

os.environ["CYTOBOOK_PROFILE"] = "smoke"
os.environ.setdefault("CYTOBOOK_RUN_DIR", tempfile.mkdtemp(prefix="cytobook-test-run-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
