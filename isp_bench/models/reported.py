"""Models known only from their papers' numbers (no public code or architecture)."""

from __future__ import annotations

from isp_bench.models._registry import ModelCard, register_reported_only

register_reported_only(ModelCard(
    name="deepcamera",
    family="reported",
    paper=("S. Ratnasingam, \"Deep Camera: A Fully Convolutional Neural Network for Image Signal Processing\", "
           "ICCV Workshops 2019"),
    input_kind=None,
    notes=("No public code or architecture: listed so leaderboards can show its published numbers; "
           "create_model raises ReportedOnlyError.",),
))
