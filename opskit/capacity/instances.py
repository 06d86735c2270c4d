"""vCPU and memory of the EC2 instance types an API fleet runs on, for scaling a measured per-instance
capacity to other types. The price catalogs carry prices only; these shapes are fixed by the type name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SHAPES_SOURCE = "the AWS EC2 instance type specifications (fixed per type)"


@dataclass(frozen=True)
class Shape:
    vcpu: int
    memory_gib: float


def _family(sizes: Mapping[str, tuple[int, float]], *families: str) -> dict[str, Shape]:
    return {f"{fam}.{size}": Shape(v, m) for fam in families for size, (v, m) in sizes.items()}


# general purpose, burstable: the same shapes for Intel (t3) and AMD (t3a)
_T3 = {"nano": (2, 0.5), "micro": (2, 1), "small": (2, 2), "medium": (2, 4), "large": (2, 8), "xlarge": (4, 16),
       "2xlarge": (8, 32)}
_GENERAL = {"large": (2, 8), "xlarge": (4, 16), "2xlarge": (8, 32), "4xlarge": (16, 64), "8xlarge": (32, 128),
            "12xlarge": (48, 192), "16xlarge": (64, 256), "24xlarge": (96, 384)}
_COMPUTE = {"large": (2, 4), "xlarge": (4, 8), "2xlarge": (8, 16), "4xlarge": (16, 32)}
_MEMORY = {"large": (2, 16), "xlarge": (4, 32), "2xlarge": (8, 64), "4xlarge": (16, 128)}

SHAPES: dict[str, Shape] = {
    **_family(_T3, "t3", "t3a"),
    **_family(_GENERAL, "m5", "m5a", "m6i", "m7i"),
    **_family(_COMPUTE, "c5", "c6i", "c7i"),
    **_family(_MEMORY, "r5", "r6i"),
}
