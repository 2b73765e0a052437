"""The sampling settings every caller of `generate` shares (sample.py, evaluate.py, the GPT
module's grids, the main job), with one meaning of "off" for each knob. Light: no torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vqgan.schema import require


@dataclass
class SamplingConfig:
    cfg_scale: float = 2.0  # classifier-free guidance; 0: off (plain conditional sampling, as 1 is)
    temperature: float = 1.0
    top_k: int = 0  # sample among the k most likely codes; 0: off
    top_p: float = 1.0  # nucleus threshold in (0, 1]; 1: off
    seed: int = 0
    steps: int = 12  # MaskGIT models: decoding iterations (a GPT always takes one per code)
    choice_temperature: float = 4.5  # MaskGIT models: Gumbel noise on the confidence that picks the codes kept

    section: ClassVar[str] = "sample"  # where the keys live in a config file, for error messages

    def __post_init__(self):
        s = self.section + "." if self.section else ""
        require(self.cfg_scale >= 0, f"{s}cfg_scale", "must be >= 0 (0: no guidance)")
        require(self.temperature > 0, f"{s}temperature", "must be > 0")
        require(self.top_k >= 0, f"{s}top_k", "must be >= 0 (0: off)")
        require(0 < self.top_p <= 1, f"{s}top_p", "must be in (0, 1] (1: off)")
        require(0 <= self.seed < 2**63, f"{s}seed", "must be in [0, 2**63)")
        require(self.steps >= 1, f"{s}steps", "must be >= 1")
        require(self.choice_temperature >= 0, f"{s}choice_temperature", "must be >= 0 (0: by confidence alone)")

    def generate_options(self, model) -> dict:
        """The keyword arguments of `generate` / `generate_masked` for a model config (its
        num_classes and kind), None where a knob is off."""
        conditional = model.num_classes > 0 or model.cond_vocab_size > 0
        options = {"cfg_scale": self.cfg_scale if conditional and self.cfg_scale > 0 else None,
                   "top_k": self.top_k or None, "top_p": self.top_p if self.top_p < 1 else None,
                   "temperature": self.temperature}
        if model.kind == "maskgit":
            options.update(steps=self.steps, choice_temperature=self.choice_temperature)
        return options
