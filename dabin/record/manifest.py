"""``sweep.json``: what a sweep folder holds the runs of, its schema defined once.

The sweep writes it before its first run and at every start (:meth:`Manifest.write`); the report
reads it (:meth:`Manifest.read`) for the sweep's name, dataset and domains, and for every run the
spec asks for (:meth:`Manifest.planned`), so a run that never started is shown as missing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dabin.errors import DabinError
from dabin.io import atomic_write_text
from dabin.record.files import MANIFEST
from dabin.record.metrics import RecordError
from dabin.record.run import Request

__all__ = ["Manifest"]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A sweep folder's manifest.

    Attributes:
        name: The sweep's name.
        fingerprint: Hash of what makes two sweeps' runs comparable (dataset, configs, extra).
        dataset: ``embedded``, ``officehome`` or ``custom`` ("" if not recorded).
        domains: The dataset's domains (empty if not recorded).
        configs: Method -> config path, as the spec writes it.
        extra: Arguments passed to every run.
        spec: The spec file the sweep ran from ("" if not recorded).
        jobs: Every run the spec asks for, as its ``job.json`` (a :class:`~dabin.record.run.Request`
            plus the sweep's own fields, among them ``name``, the run folder's).
    """

    name: str = ""
    fingerprint: str = ""
    dataset: str = ""
    domains: tuple[str, ...] = ()
    configs: dict[str, str] = dataclasses.field(default_factory=dict)
    extra: tuple[str, ...] = ()
    spec: str = ""
    jobs: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As written to ``sweep.json``."""
        return {"name": self.name, "fingerprint": self.fingerprint, "dataset": self.dataset,
                "domains": list(self.domains), "configs": self.configs, "extra": list(self.extra),
                "spec": self.spec, "jobs": [dict(job) for job in self.jobs]}

    def write(self, folder: Path) -> None:
        """Write ``folder/sweep.json`` atomically."""
        atomic_write_text(Path(folder) / MANIFEST, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, data: Any, where: str) -> Manifest:
        """Parse a manifest (``where`` names it in messages).

        Raises:
            DabinError: Not an object, or domains that are not a list of names.
        """
        if not isinstance(data, dict):
            raise DabinError(f"{where}: a sweep manifest is a JSON object, got {type(data).__name__}")
        domains = data.get("domains")
        if domains is not None and (not isinstance(domains, list) or not all(isinstance(d, str) for d in domains)):
            raise DabinError(f"{where}: domains must be a list of names, got {domains!r}")
        jobs = data.get("jobs")
        return cls(name=str(data.get("name") or ""), fingerprint=str(data.get("fingerprint") or ""),
                   dataset=str(data.get("dataset") or ""), domains=tuple(domains or ()),
                   configs=dict(data.get("configs") or {}), extra=tuple(data.get("extra") or ()),
                   spec=str(data.get("spec") or ""), jobs=tuple(jobs) if isinstance(jobs, list) else ())

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """``folder/sweep.json``, or None where there is none.

        Raises:
            DabinError: Unreadable, not JSON, or refused by :meth:`from_json`; the message names the file.
        """
        path = Path(folder) / MANIFEST
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise DabinError(f"{path}: not a readable sweep manifest ({error})") from None
        return cls.from_json(data, str(path))

    def planned(self, folder: Path) -> list[tuple[str, Request]]:
        """(run folder name, request) of every run the spec asks for, in order.

        Args:
            folder: The sweep folder (for messages).

        Raises:
            DabinError: A job entry without a name or whose fields have the wrong shape.
        """
        planned = []
        for entry in self.jobs:
            try:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                    raise RecordError("no name")
                planned.append((str(entry["name"]), Request.from_json(entry)))
            except RecordError:
                raise DabinError(f"{Path(folder) / MANIFEST}: a job entry is damaged ({entry!r})") from None
        return planned
