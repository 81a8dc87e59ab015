"""Property-based tests of every parser and codec (Hypothesis).

A package, so that its conftest is ``fuzz.conftest`` and never shadows the suite's own
``conftest`` module, which the integration tests import by that name.
"""
