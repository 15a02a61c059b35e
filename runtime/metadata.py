"""The metadata contract between ``n2nkit export`` and the runtime.

Export writes these keys into the ONNX file's ``metadata_props`` (and into the JSON sidecar of a
TensorRT engine); the runtime reads them to know how to feed the model. Every value is a string
in the file; :class:`ModelMetadata` holds them typed. Pure Python: no numpy, no onnx.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from n2nkit.errors import ModelFormatError

PREFIX = "n2nkit."
INPUT_NAME = "noisy"
OUTPUT_NAME = "denoised"
INPUT_LAYOUT = "NCHW"
VALUE_RANGE = "0,1"  # float32 in [0, 1]: uint8 / 255


@dataclass
class ModelMetadata:
    """Typed view of the ``n2nkit.*`` keys.

    ``precision`` names the weights (fp32, fp16, int8); inputs and outputs are always float32
    NCHW in ``value_range`` so every artifact is called the same way.
    """

    variant: str
    size_multiple: int
    channels: int = 3
    input_layout: str = INPUT_LAYOUT
    value_range: str = VALUE_RANGE
    precision: str = "fp32"
    noise: str = ""
    val_psnr: float | None = None
    version: str = ""
    min_side: int = 1
    noise_range: str = ""  # "LOW-HIGH": Gaussian σ (0-255) the model was trained for
    extra: dict[str, str] = field(default_factory=dict)

    def sigma_range(self) -> tuple[float, float] | None:
        """The trained Gaussian σ range: ``noise_range``, else a ``gaussian:`` noise spec's
        (models exported before ``noise_range`` existed); None when unknown."""
        from n2nkit.runtime.noise_level import parse_sigma_range

        return parse_sigma_range(self.noise_range, self.noise)

    def to_props(self) -> dict[str, str]:
        """Flatten into ``{"n2nkit.key": "value"}`` strings for ONNX metadata_props."""
        props = {}
        for key, value in asdict(self).items():
            if key == "extra":
                props.update({PREFIX + k: str(v) for k, v in value.items()})
            elif value is not None:
                props[PREFIX + key] = str(value)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMetadata:
        """Parse metadata_props; raise :class:`ModelFormatError` if n2nkit's keys are absent."""
        ours = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "variant" not in ours or "size_multiple" not in ours:
            raise ModelFormatError(
                f"{source} has no n2nkit metadata (variant, size_multiple): export it with "
                "`n2nkit export`"
            )
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        try:
            meta = cls(
                variant=ours["variant"],
                size_multiple=int(ours["size_multiple"]),
                channels=int(ours.get("channels", 3)),
                input_layout=ours.get("input_layout", INPUT_LAYOUT),
                value_range=ours.get("value_range", VALUE_RANGE),
                precision=ours.get("precision", "fp32"),
                noise=ours.get("noise", ""),
                val_psnr=float(ours["val_psnr"]) if ours.get("val_psnr") else None,
                version=ours.get("version", ""),
                min_side=int(ours.get("min_side", 1)),
                noise_range=ours.get("noise_range", ""),
                extra={k: v for k, v in ours.items() if k not in known},
            )
        except ValueError as exc:
            raise ModelFormatError(f"{source} has malformed n2nkit metadata: {exc}") from None
        if meta.size_multiple < 1 or meta.channels < 1:
            raise ModelFormatError(f"{source} has invalid size_multiple/channels metadata")
        if meta.input_layout != INPUT_LAYOUT or meta.value_range != VALUE_RANGE:
            raise ModelFormatError(
                f"{source} expects layout {meta.input_layout} and range {meta.value_range}; "
                f"this runtime feeds {INPUT_LAYOUT} in [{VALUE_RANGE}]"
            )
        return meta
