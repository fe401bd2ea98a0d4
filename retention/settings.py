"""Every RETENTION_* setting, read from the environment (and `.env` when present)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTION_", env_file=".env", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "retention-journeys"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'retention.db'}"
    rules_dir: Path = ROOT / "rules"
    outbox_dir: Path = ROOT / "var" / "outbox"
    delivery_mode: Literal["capture"] = "capture"
    ui_url: str = "http://127.0.0.1:8233"
    demo_time_scale: float = 30_000.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
