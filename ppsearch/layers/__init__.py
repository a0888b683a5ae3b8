"""Layers: push-pull inhibition and anti-aliased downsampling."""
from .blur_pool import BlurPool2d
from .create_push_pull import PUSH_PULL_VARIANTS, create_push_pull
from .push_pull import PushPull2d
from .push_pull_minmax import MinMaxPushPull2d
from .push_pull_upsample import UpsamplePushPull2d, default_pull_kernel_size

__all__ = ["PUSH_PULL_VARIANTS", "BlurPool2d", "MinMaxPushPull2d", "PushPull2d", "UpsamplePushPull2d",
           "create_push_pull", "default_pull_kernel_size"]
