"""Array aliases and the registry helper shared by the engine's modules."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating[Any]]


class Named(Protocol):
    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=Named)


def registry(*records: R) -> dict[str, R]:
    """The records by name, in the order given: each name is written once, in its record."""
    return {record.name: record for record in records}
