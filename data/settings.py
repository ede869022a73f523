"""One settings object, read from environment variables (and overridden by CLI flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Where things live and how the pipeline behaves. Env vars are PHISHLENS_<FIELD>."""

    home: Path  # working directory: store, converted models, adapters
    store_path: Path
    models_dir: Path  # converted base models (shared by every store: conversion runs once)
    data_dir: Path | None  # real corpora to use instead of the synthetic demo
    model: str  # registry name, HF hub id or local folder
    device: str  # auto | cpu | cuda
    max_tokens: int  # token budget per email when scoring
    lowercase: bool  # lower-case all text at ingest (recorded as part of the normalisation)
    max_body_chars: int  # bodies are cut here (flagged as truncated), so a 50 MB mail stays cheap
    max_message_bytes: int  # raw bytes read per message before parsing
    seed: int
    host: str
    port: int
    studies_dir: Path = PROJECT_ROOT / "studies"  # study specs (*.toml) the Study page lists
    quantize: str = "none"  # none | 4bit (bitsandbytes NF4, CUDA only) for training and evaluation
    compile: str = "auto"  # auto | on | off: torch.compile the scorer for long evaluations (see diagnostics.analyses.evaluate)
    precision: str = "fp32"  # fp32 | bf16 | int8: evaluation's scoring precision (see models.precision)
    executor: str = "local"  # local | ray: where evaluation tasks run
    ray_address: str | None = None  # an existing Ray cluster (None: a local Ray instance)
    ray_workers: int | None = None  # CPUs of a local Ray instance (None: all)
    shards_dir: Path | None = None  # Parquet shards from Ray workers (None: home/shards; shared storage on a cluster)

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def shards_path(self) -> Path:
        return self.shards_dir or self.home / "shards"

    @property
    def parse_limits(self):
        """The parsers' size caps (data.parse.ParseLimits)."""
        from data.parse import ParseLimits

        return ParseLimits(self.max_body_chars, self.max_message_bytes)

    def with_overrides(self, **changes) -> "Settings":
        """A copy with the given fields replaced; None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_settings(**overrides) -> Settings:
    """Settings from PHISHLENS_* environment variables, then keyword overrides."""
    home = Path(os.environ.get("PHISHLENS_HOME", PROJECT_ROOT / ".phishlens")).resolve()
    data_dir = os.environ.get("PHISHLENS_DATA")
    settings = Settings(
        home=home,
        store_path=Path(os.environ.get("PHISHLENS_STORE", home / "store.duckdb")).resolve(),
        models_dir=Path(os.environ.get("PHISHLENS_MODELS", home / "models")).resolve(),
        data_dir=Path(data_dir).resolve() if data_dir else None,
        model=os.environ.get("PHISHLENS_MODEL", "smollm2-135m"),
        device=os.environ.get("PHISHLENS_DEVICE", "auto"),
        max_tokens=int(os.environ.get("PHISHLENS_MAX_TOKENS", "256")),
        lowercase=_env_bool("PHISHLENS_LOWERCASE", False),
        max_body_chars=int(os.environ.get("PHISHLENS_MAX_BODY_CHARS", "100000")),
        max_message_bytes=int(os.environ.get("PHISHLENS_MAX_MESSAGE_BYTES", str(25 * 2**20))),
        seed=int(os.environ.get("PHISHLENS_SEED", "13")),
        host=os.environ.get("PHISHLENS_HOST", "127.0.0.1"),
        port=int(os.environ.get("PHISHLENS_PORT", "8501")),
        studies_dir=Path(os.environ.get("PHISHLENS_STUDIES", PROJECT_ROOT / "studies")).resolve(),
        quantize=os.environ.get("PHISHLENS_QUANTIZE", "none"),
        compile=os.environ.get("PHISHLENS_COMPILE", "auto"),
        precision=os.environ.get("PHISHLENS_PRECISION", "fp32"),
        executor=os.environ.get("PHISHLENS_EXECUTOR", "local"),
        ray_address=os.environ.get("PHISHLENS_RAY_ADDRESS") or None,
        ray_workers=int(os.environ["PHISHLENS_RAY_WORKERS"]) if os.environ.get("PHISHLENS_RAY_WORKERS") else None,
        shards_dir=Path(os.environ["PHISHLENS_SHARDS"]).resolve() if os.environ.get("PHISHLENS_SHARDS") else None,
    )
    return settings.with_overrides(**overrides)
