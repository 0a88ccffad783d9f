"""`QuantConfig`: what to quantize and how (W-E-A bits, quantizer names, attention variant).

Loaded from YAML (``QuantConfig.from_yaml(path)``), from a named preset shipped in
``paddle_binbert/configs/quant/<name>.yaml`` (``QuantConfig.from_preset("bibert")``), or from
the dict saved in a checkpoint's ``config.json`` (``binbert_quant_config``). Invalid values
fail at construction with a message listing the valid choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import yaml

__all__ = ["QuantConfig", "available_presets", "PRESET_DIR"]

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "quant"

VALID_BITS = (1, 2, 4, 8, 32)
# weight/embedding quantizer name -> the bits it produces (None: any of 2..8)
WEIGHT_QUANTIZER_BITS: Dict[str, Optional[tuple]] = {
    "none": (32,),
    "bibert": (1,),
    "bwn": (1,),
    "bwn_centered": (1,),
    "twn": (2,),
    "uniform": (2, 4, 8),
}
# activation quantizer family -> bits it supports. The family is resolved per site into a
# signed or unsigned quantizer (BiT's two-set rule) by `paddle_binbert.models.quantize`.
ACTIVATION_QUANTIZER_BITS: Dict[str, tuple] = {
    "none": (32,),
    "sign": (1,),
    "elastic": (1,),
    "lsq": (2, 4, 8),
    "uniform_clip": (2, 4, 8),
}
ATTENTION_VARIANTS = ("quant", "bi", "bit")
HIDDEN_ACTS = (None, "gelu", "relu")


@dataclass
class QuantConfig:
    """Quantization recipe of a student.

    Attributes:
        weight_bits / embedding_bits / activation_bits: W-E-A bits (32 = full precision).
        weight_quantizer: ``none | bibert | bwn | bwn_centered | twn | uniform`` for every
            encoder linear and the pooler dense layer.
        embedding_quantizer: same names, applied row-wise to the word embedding.
        activation_quantizer: ``none | sign | elastic | lsq | uniform_clip``: the inputs of every
            quantized linear, Q/K/V and the attention probabilities.
        attention: ``quant`` (softmax, probabilities quantized like activations; BinaryBERT),
            ``bi`` (BiBERT's bool(sign(Q) sign(K)^T), no softmax), ``bit`` (softmax + elastic
            {0, alpha} probabilities; BiT).
        hidden_act: override the FFN activation (``relu`` for BiT), ``None`` keeps the model's.
        quantize_pooler: the pooler dense is quantized like the encoder linears (all three
            reference implementations do so).
        name: a label for logs and results tables.
    """

    weight_bits: int = 32
    embedding_bits: int = 32
    activation_bits: int = 32
    weight_quantizer: str = "none"
    embedding_quantizer: str = "none"
    activation_quantizer: str = "none"
    attention: str = "quant"
    hidden_act: Optional[str] = None
    quantize_pooler: bool = True
    name: str = "custom"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the valid choices when a value is invalid."""
        for bits_field in ("weight_bits", "embedding_bits", "activation_bits"):
            value = getattr(self, bits_field)
            if value not in VALID_BITS:
                raise ValueError(f"QuantConfig.{bits_field}={value!r} is invalid; valid values: {list(VALID_BITS)}")
        self._check_pair("weight_quantizer", "weight_bits", WEIGHT_QUANTIZER_BITS)
        self._check_pair("embedding_quantizer", "embedding_bits", WEIGHT_QUANTIZER_BITS)
        self._check_pair("activation_quantizer", "activation_bits", ACTIVATION_QUANTIZER_BITS)
        if self.attention not in ATTENTION_VARIANTS:
            raise ValueError(
                f"QuantConfig.attention={self.attention!r} is invalid; valid values: {list(ATTENTION_VARIANTS)}"
            )
        if self.attention == "bi" and self.activation_quantizer != "sign":
            raise ValueError("QuantConfig.attention='bi' (BiBERT) needs activation_quantizer='sign'")
        if self.attention == "bit" and self.activation_quantizer != "elastic":
            raise ValueError("QuantConfig.attention='bit' (BiT) needs activation_quantizer='elastic'")
        if self.hidden_act not in HIDDEN_ACTS:
            valid = list(HIDDEN_ACTS)
            raise ValueError(f"QuantConfig.hidden_act={self.hidden_act!r} is invalid; valid values: {valid}")

    def _check_pair(self, name_field: str, bits_field: str, table: Dict[str, tuple]) -> None:
        name, bits = getattr(self, name_field), getattr(self, bits_field)
        if name not in table:
            raise ValueError(f"QuantConfig.{name_field}={name!r} is unknown; valid names: {sorted(table)}")
        if bits not in table[name]:
            raise ValueError(
                f"QuantConfig.{name_field}={name!r} cannot give {bits_field}={bits}; "
                f"{name!r} supports bits {list(table[name])}"
            )

    # ------------------------------------------------------------------ views
    @property
    def bits(self) -> tuple:
        """(W, E, A) bits."""
        return (self.weight_bits, self.embedding_bits, self.activation_bits)

    @property
    def bits_str(self) -> str:
        """W-E-A bits written as in the papers, e.g. ``1-1-1``."""
        return "-".join(str(b) for b in self.bits)

    @property
    def is_full_precision(self) -> bool:
        """True when nothing is quantized."""
        return self.bits == (32, 32, 32)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (JSON/YAML-safe) of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "config") -> QuantConfig:
        """Build from a dict; unknown keys fail with the list of valid fields."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of QuantConfig fields, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{source}: unknown QuantConfig field(s) {unknown}; valid fields: {sorted(names)}")
        try:
            return cls(**data)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> QuantConfig:
        """Read a YAML file holding QuantConfig fields (optionally under a ``quant:`` key)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"quantization config {path} does not exist")
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if isinstance(data, dict) and "quant" in data:
            data = data["quant"]
        return cls.from_dict(data, source=str(path))

    def to_yaml(self, path: Union[str, Path]) -> None:
        """Write the config as YAML."""
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(self.to_dict(), fh, sort_keys=False)

    @classmethod
    def from_preset(cls, name: str) -> QuantConfig:
        """A named preset: ``fp``, ``bwn``, ``bibert``, ``bit``, ``binarybert_ternary``, ``binarybert``."""
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown quantization preset {name!r}; valid presets: {available_presets()}")
        return cls.from_yaml(path)

    @classmethod
    def resolve(cls, spec: Union[str, Path, Dict[str, Any], QuantConfig]) -> QuantConfig:
        """Accept a QuantConfig, a dict, a preset name or a YAML path."""
        if isinstance(spec, QuantConfig):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        text = str(spec)
        if text.endswith((".yaml", ".yml")) or Path(text).is_file():
            return cls.from_yaml(text)
        return cls.from_preset(text)


def available_presets() -> list:
    """Names of the shipped presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
