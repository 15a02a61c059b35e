"""n2nkit: train a Noise2Noise denoiser, export it, and run it on desktop GPUs and phones.

Importing ``n2nkit`` is cheap on purpose: torch, onnx and TensorRT are imported only by the
functions that need them, so the CLI and the runtime start fast.
"""

from n2nkit.errors import N2NError

__version__ = "0.1.0"

__all__ = ["N2NError", "__version__"]
