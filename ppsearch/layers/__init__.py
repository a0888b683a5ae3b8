"""Layers: push-pull inhibition and anti-aliased downsampling."""
from .blur_pool import BlurPool2d
from .push_pull import PushPull2d, default_pull_kernel_size

__all__ = ["BlurPool2d", "PushPull2d", "default_pull_kernel_size"]
