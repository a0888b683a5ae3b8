"""ppsearch: where in a ConvNet should push-pull inhibition go, and what does it cost?"""
from .design import Design
from .layers import BlurPool2d, PushPull2d
from .models import build_model
from .surgery import pushpullify

__version__ = "0.1.0"

__all__ = ["BlurPool2d", "Design", "PushPull2d", "build_model", "pushpullify", "__version__"]
