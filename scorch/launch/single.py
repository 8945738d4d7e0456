"""No launcher: one process, rank 0 of 1."""
from __future__ import annotations

from collections.abc import Mapping

from .base import LaunchEnvironment, LaunchInfo


class SingleProcessEnvironment(LaunchEnvironment):
    name = "none"

    @classmethod
    def detect(cls, env: Mapping[str, str]) -> bool:
        return True

    @classmethod
    def read(cls, env: Mapping[str, str]) -> LaunchInfo:
        return LaunchInfo(cls.name, 0, 1, 0, 1, 0)
