"""selfsup: learn representations from unlabeled data, judge them, and put them to work."""

__version__ = "0.1.0"
