"""Functions that tests hand to worker processes.

A worker unpickles a function by importing its module by name. Test modules are
imported as ``tests.test_x``, and a test dependency may install a top-level
``tests`` package of its own into site-packages, which would shadow ours in the
worker. This module sits on pytest's ``pythonpath`` under a name of its own.
"""

from sklearn.base import clone


def partial_fit_in_worker(est, X, y):
    """A clone of ``est`` after one ``partial_fit``, and the type X arrived as."""
    assert not X.flags.writeable  # loky hands large arrays over as read-only memmaps
    return clone(est).partial_fit(X, y), type(X).__name__
