"""Fidelity and privacy metrics: pure functions over feature matrices of shape (n, d); no IO."""
