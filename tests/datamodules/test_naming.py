"""Domain codes, spelling-independent names and the task list."""

from __future__ import annotations

import pytest

from dabin.errors import DabinError
from datamodules import OFFICE_HOME_TASKS, domain_code, domain_key, parse_task, task_name, transfer_tasks
from datamodules.naming import unique_codes

PAPER_ORDER = ["Ar->Cl", "Ar->Pr", "Ar->Rw", "Cl->Ar", "Cl->Pr", "Cl->Rw",
               "Pr->Ar", "Pr->Cl", "Pr->Rw", "Rw->Ar", "Rw->Cl", "Rw->Pr"]


@pytest.mark.parametrize(("name", "code"), [
    ("Art", "Ar"), ("Clipart", "Cl"), ("Product", "Pr"), ("Real World", "Rw"), ("Real_World", "Rw"),
    ("RealWorld", "Rw"), ("art_painting", "Ap"), ("sketch", "Sk"), ("Ink", "In"), ("Neon", "Ne"),
])
def test_domain_code(name: str, code: str) -> None:
    assert domain_code(name) == code


def test_domain_key_ignores_spelling() -> None:
    assert len({domain_key(n) for n in ("Real World", "Real_World", "RealWorld", "real-world")}) == 1
    assert domain_key("Art") != domain_key("Clipart")


def test_colliding_codes_fall_back_to_names() -> None:
    assert unique_codes(["Clipart", "Clothes", "Art"]) == ["Clipart", "Clothes", "Ar"]


def test_office_home_tasks_follow_the_paper() -> None:
    assert [task_name(s, t) for s, t in OFFICE_HOME_TASKS] == PAPER_ORDER
    # Any spelling or order of the domains gives the paper's order, in the caller's spelling.
    shuffled = ["Rw", "Product", "Clipart", "art"]
    tasks = transfer_tasks(shuffled)
    assert [task_name(s, t) for s, t in tasks] == PAPER_ORDER
    assert tasks[0] == ("art", "Clipart")


def test_other_trees_give_all_ordered_pairs() -> None:
    tasks = transfer_tasks(["photo", "sketch", "cartoon"])
    assert tasks == [("photo", "sketch"), ("photo", "cartoon"), ("sketch", "photo"),
                     ("sketch", "cartoon"), ("cartoon", "photo"), ("cartoon", "sketch")]


@pytest.mark.parametrize("text", ["Ar->Cl", "Ar2Cl", "Ar:Cl", " Ar -> Cl ", "Ar→Cl"])
def test_parse_task(text: str) -> None:
    assert parse_task(text) == ("Ar", "Cl")


@pytest.mark.parametrize("text", ["ArCl", "Ar->", "Ar->Cl->Pr", ""])
def test_parse_task_rejects(text: str) -> None:
    with pytest.raises(DabinError, match="unknown task"):
        parse_task(text)


def test_a_unique_initial_names_a_domain_as_papers_write_tasks() -> None:
    from dabin.sweep.spec import resolve_task
    from datamodules.naming import domain_aliases

    office31 = ["amazon", "dslr", "webcam"]
    assert resolve_task("A->W", office31) == ("amazon", "webcam")
    assert resolve_task("d→a", office31) == ("dslr", "amazon")
    domainnet = ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]
    assert resolve_task("c->p", domainnet) == ("clipart", "painting")
    # Two domains sharing an initial: neither gets it; names and codes still win over initials.
    aliases = domain_aliases(["Clipart", "Clothes", "Art", "C"])
    assert "c" in aliases and aliases["c"] == "C"
    assert aliases["a"] == "Art" and "clipart" in aliases
    with pytest.raises(DabinError, match="unknown domain 'X'"):
        resolve_task("X->A", ["Art", "Clipart"])


def test_the_tree_resolves_an_initial(tmp_path) -> None:
    from dabin.testing.replicas import make_replica
    from datamodules.tree import DomainTree
    import warnings

    make_replica("office_31", tmp_path, per_class=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = DomainTree.scan(tmp_path)
    assert [tree.resolve(letter) for letter in "ADW"] == [0, 1, 2]
    with pytest.raises(DabinError, match="unknown domain 'Q'"):
        tree.resolve("Q")
