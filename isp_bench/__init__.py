"""isp-bench: datasets, models and reference-matched metrics for learned camera ISPs."""

__version__ = "0.1.0"
