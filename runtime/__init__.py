"""n2nkit.runtime: run an exported denoiser with numpy plus onnxruntime or TensorRT, no torch.

Importing it needs numpy only; onnxruntime and TensorRT are imported when a backend starts.
It imports nothing from ``n2nkit.training`` or ``n2nkit.export``: apps embed it alone.

    from n2nkit.runtime import Denoiser
    clean = Denoiser.load()(noisy)        # the shipped n2n model on the best backend available
"""

from n2nkit.runtime.backend import BACKENDS, Backend
from n2nkit.runtime.denoiser import Denoiser
from n2nkit.runtime.metadata import ModelMetadata
from n2nkit.runtime.shipped import shipped_model_names, shipped_model_path

__all__ = [
    "BACKENDS",
    "Backend",
    "Denoiser",
    "ModelMetadata",
    "shipped_model_names",
    "shipped_model_path",
]
