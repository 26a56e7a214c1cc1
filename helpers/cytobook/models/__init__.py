"""Model builders, one module per report (:mod:`.cnmc` for report 1), plus shared input layers."""

from .layers import CaffePreprocess, imagenet_preprocessing

__all__ = ["CaffePreprocess", "imagenet_preprocessing"]
