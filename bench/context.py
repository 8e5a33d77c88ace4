"""What every benchmark section receives: the run's size, where to work and where results go."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import CorpusImage, build_corpus

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Context:
    quick: bool
    work: Path = ROOT / "var" / "bench"  # scratch: corpus, stores, logs (never committed)
    results: Path = ROOT / "bench" / "results"

    @property
    def size(self) -> str:
        return "quick" if self.quick else "full"

    def scaled(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    @functools.cached_property
    def corpus(self) -> list[CorpusImage]:
        return build_corpus(self.work / "corpus", self.size)

    def corpus_of(self, kind: str) -> list[CorpusImage]:
        return [image for image in self.corpus if image.kind == kind]
