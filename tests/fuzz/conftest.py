"""Hypothesis profiles for the fuzz tests, and the unit tests' helpers on the import path.

``ci`` (the default) bounds every test's examples and each example's time, so that the whole
folder runs in well under a minute on two cores; ``deep`` (``DISTSTORAGE_FUZZ_PROFILE=deep``)
runs many more examples without a deadline, for a hunt by hand. Neither keeps an example
database, and Hypothesis's cache goes to a temporary folder: a run leaves no files behind, and
a failure prints its example (and the blob that replays it) instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

settings.register_profile(
    "ci",
    max_examples=200,
    # Generous, as the two cores are shared: a deadline here catches a parser that hangs or
    # goes quadratic, not one that is a little slow under load.
    deadline=timedelta(seconds=2),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("deep", max_examples=5000, deadline=None, database=None)
settings.load_profile(os.environ.get("DISTSTORAGE_FUZZ_PROFILE", "ci"))


# Hypothesis caches what it learns of the code (``constants/``) in its home folder, else
# ``./.hypothesis``, and its pytest plugin does so while collecting: so the folder is set here,
# at import, to a temporary one that goes when the run ends.
_HOME = tempfile.mkdtemp(prefix="diststorage-hypothesis-")
set_hypothesis_home_dir(_HOME)
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

# The independent aws-chunked encoders and the botocore signing oracles live with the unit
# tests; pytest puts that folder on the path only once it collects a test there.
_UNIT_TESTS = str(Path(__file__).resolve().parents[1] / "unit")
if _UNIT_TESTS not in sys.path:
    sys.path.append(_UNIT_TESTS)
