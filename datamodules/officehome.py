"""What dabin knows about Office-Home: domain spellings, expected sizes, the paper's task order.

Office-Home (Venkateswara et al., CVPR 2017) has four domains of the same 65 classes. The official
archive unpacks to ``OfficeHomeDataset_10072016/{Art,Clipart,Product,Real World}/<Class>/<n>.jpg``;
other toolkits rename the last domain ``Real_World`` or ``RealWorld``. The official file lists ship
with the package (``datamodules/lists/office_home_<Domain>.txt``, ``<Domain>/<Class>/<file> <label>``
lines) so tests can build a layout-faithful replica without the images.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from datamodules.naming import domain_key

__all__ = [
    "ARCHIVE_FOLDER",
    "OFFICE_HOME_COUNTS",
    "OFFICE_HOME_DOMAINS",
    "OFFICE_HOME_TASKS",
    "canonical_office_home_name",
    "is_office_home",
    "office_home_list",
]

#: Official domain names, in the paper's order.
OFFICE_HOME_DOMAINS: tuple[str, ...] = ("Art", "Clipart", "Product", "Real World")

#: Images per domain in the official release (recipes: 15,588 in total).
OFFICE_HOME_COUNTS: dict[str, int] = {"Art": 2427, "Clipart": 4365, "Product": 4439, "Real World": 4357}

#: The 12 source->target tasks in the order of the paper's Table 4.
OFFICE_HOME_TASKS: tuple[tuple[str, str], ...] = tuple(
    (source, target) for source in OFFICE_HOME_DOMAINS for target in OFFICE_HOME_DOMAINS if source != target
)

#: Top folder of the official archive; a root holding only this folder is looked into.
ARCHIVE_FOLDER = "OfficeHomeDataset_10072016"

_BY_KEY = {domain_key(name): name for name in OFFICE_HOME_DOMAINS}


def canonical_office_home_name(name: str) -> str | None:
    """Official name of an Office-Home domain folder spelled any known way, else None.

    Args:
        name: A folder or domain name (``"Real_World"``, ``"RealWorld"``, ``"real world"`` ...).

    Returns:
        ``"Art"``, ``"Clipart"``, ``"Product"``, ``"Real World"`` or None.
    """
    return _BY_KEY.get(domain_key(name))


def is_office_home(domain_names: list[str]) -> bool:
    """Whether a tree's domains are Office-Home's (at least two of them, and nothing else).

    Args:
        domain_names: The folder names found under a root.

    Returns:
        True for Office-Home, complete or not (a missing domain is reported by the tree).
    """
    known = [canonical_office_home_name(name) for name in domain_names]
    return len(known) >= 2 and all(known)


def office_home_list(domain: str) -> list[tuple[str, int]]:
    """The official file list of one Office-Home domain, as shipped with the package.

    Args:
        domain: A domain name in any spelling, or its code is NOT accepted here (use the name).

    Returns:
        ``(relative path, label)`` pairs, paths as ``<Domain>/<Class>/<file>`` with the official
        domain folder name (``Real World`` with a space).
    """
    name = canonical_office_home_name(domain)
    if name is None:
        raise KeyError(domain)
    text = (resources.files("datamodules") / "lists" / f"office_home_{name.replace(' ', '_')}.txt").read_text()
    pairs = []
    for line in text.splitlines():
        if line.strip():
            path, label = line.rsplit(maxsplit=1)  # paths contain spaces ("Real World/...")
            pairs.append((path, int(label)))
    return pairs


def lists_folder() -> Path:
    """Folder of the packaged Office-Home lists (for users who want to pass them as image lists)."""
    return Path(str(resources.files("datamodules") / "lists"))
