"""Domain names and their two-letter codes, matched however a user or a toolkit spells them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from dabin.errors import DabinError

__all__ = ["DOMAIN_SEPARATOR", "domain_aliases", "domain_code", "domain_key", "domain_list", "format_task", "join_domains",
           "split_domains", "unique_codes"]

#: Joins several domains in one field (a multi-source task's sources: ``"Art,Clipart,Product"``).
DOMAIN_SEPARATOR = ","

# Word boundaries: separators, and lower->upper case changes ("RealWorld" is two words).
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def domain_key(name: str) -> str:
    """Spelling-independent key of a domain name: lower case, separators removed.

    ``"Real World"``, ``"Real_World"``, ``"RealWorld"`` and ``"real-world"`` share the key
    ``"realworld"``, so each can name the same folder.

    Args:
        name: A domain name as written by a user, a folder or an image list.

    Returns:
        The key used to compare domain names.
    """
    return re.sub(r"[\s_\-.]+", "", name).lower()


def domain_code(name: str) -> str:
    """Two-letter code of a domain, as papers write tasks (``Ar->Cl``).

    One word gives its first two letters (``"Art"`` -> ``"Ar"``, ``"clipart"`` -> ``"Cl"``);
    several words give their initials (``"Real World"``, ``"Real_World"`` and ``"RealWorld"`` ->
    ``"Rw"``, ``"art_painting"`` -> ``"Ap"``).

    Args:
        name: A domain name.

    Returns:
        The code: an upper-case letter followed by a lower-case one (or a digit).
    """
    words = _WORDS.findall(name.replace("_", " ").replace("-", " "))
    if not words:
        return name[:2]
    letters = words[0][0] + words[1][0] if len(words) > 1 else words[0][:2]
    return letters[:1].upper() + letters[1:].lower()


def join_domains(names: list[str] | tuple[str, ...]) -> str:
    """Several domains as one field of a record or a task: ``"Art,Clipart,Product"``."""
    return DOMAIN_SEPARATOR.join(names)


def split_domains(field: str) -> list[str]:
    """Inverse of :func:`join_domains` (one domain gives a one-element list)."""
    return [name.strip() for name in field.split(DOMAIN_SEPARATOR)]


def domain_list(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    """Domains as a user writes them, a list or joined (``"Ar,Cl,Pr"``), as a list; None stays None.

    Args:
        value: The domains.
        what: The argument's name, for the message.

    Raises:
        DabinError: No domain, or an empty name among them.
    """
    if value is None:
        return None
    names = split_domains(value) if isinstance(value, str) else [str(name).strip() for name in value]
    if not names or not all(names):
        raise DabinError(f"unknown {what} {value!r}; name one or more domains, e.g. 'Ar' or 'Ar,Cl,Pr'")
    return names


def format_task(source: str, target: str) -> str:
    """A task as results, reports and progress lines write it: ``Ar→Cl``, ``Ar,Cl,Pr→Rw`` (domain codes).

    ``source`` (and ``target``) may name several domains (:func:`join_domains`): a multi-source task,
    or the training domains of a domain-generalization run.
    """
    def codes(field: str) -> str:
        return DOMAIN_SEPARATOR.join(domain_code(name) for name in split_domains(field))

    return f"{codes(source)}→{codes(target)}"


def unique_codes(names: list[str]) -> list[str]:
    """Codes for the domains of one dataset, falling back to the full name where two collide.

    A code only helps if it names one domain: ``Clipart`` and ``Clothes`` would both be ``Cl``,
    so both keep their names as codes instead of one silently winning.

    Args:
        names: The dataset's domain names.

    Returns:
        One code per name, in the same order, all distinct (as keys, see :func:`domain_key`).
    """
    codes = [domain_code(name) for name in names]
    keys = [domain_key(code) for code in codes]
    return [name if keys.count(key) > 1 or key in {domain_key(n) for n in names if n != name} else code
            for name, code, key in zip(names, codes, keys)]


def domain_aliases(names: Sequence[str]) -> dict[str, str]:
    """Every spelling that names one domain of a dataset, by :func:`domain_key`: name, code, initial.

    Papers and tllib's scripts write tasks with one letter per domain (``-s A -t W`` on Office-31,
    ``c -> p`` on DomainNet), so a domain's initial names it too, where no other domain of the
    dataset shares that initial and it is not another domain's name or code.

    Args:
        names: The dataset's domain names.

    Returns:
        Key of a spelling -> the domain's name (names first, then codes, then initials: an earlier
        kind of spelling is never shadowed by a later one).
    """
    aliases: dict[str, str] = {}
    codes = unique_codes(list(names))
    for spellings in (list(names), codes):
        for spelling, name in zip(spellings, names):
            aliases.setdefault(domain_key(spelling), name)
    initials = [domain_key(name)[:1] for name in names]
    for initial, name in zip(initials, names):
        if initial and initials.count(initial) == 1:
            aliases.setdefault(initial, name)
    return aliases
