"""Every number of :mod:`dabin.report.published_dg` against DomainBed's own results file.

``data/domainbed_results.tex`` is facebookresearch/DomainBed's
``domainbed/results/2020_10_06_7df6f06/results.tex``, as published.
"""

from __future__ import annotations

import re
from pathlib import Path

from dabin.report.published_dg import DOMAINBED, DOMAINBED_COLUMNS

TEX = Path(__file__).parent / "data" / "domainbed_results.tex"
RULES = {"training-domain validation set": "training_domain", "leave-one-domain-out cross-validation":
         "leave_one_domain_out", "test-domain validation set (oracle)": "oracle"}
METHODS = {"ERM": "erm", "CORAL": "coral", "MMD": "mmd", "GroupDRO": "group_dro", "DANN": "dg_dann"}
DATASETS = {"VLCS": "vlcs", "PACS": "pacs", "OfficeHome": "office_home", "TerraIncognita": "terra_incognita",
            "DomainNet": "domainnet"}


def test_every_published_number_is_domainbeds() -> None:
    seen = 0
    rule = dataset = None
    columns: list[str] = []
    for line in TEX.read_text().splitlines():
        if match := re.match(r"\\subsection\{Model selection: (.+)\}", line):
            rule = RULES[match.group(1)]
        elif match := re.match(r"\\subsubsection\{(.+)\}", line):
            dataset = DATASETS.get(match.group(1))
        elif line.startswith(r"\textbf{Algorithm}") and dataset:
            columns = [re.sub(r"\\textbf\{(.*)\}", r"\1", cell.strip()) for cell in line.rstrip("\\ ").split("&")][1:]
            assert tuple(columns) == DOMAINBED_COLUMNS[dataset]
        elif dataset and (match := re.match(r"^(\w+)\s+&(.*)\\\\", line)) and match.group(1) in METHODS:
            values = tuple(float(cell.split("$")[0]) for cell in match.group(2).split("&"))
            assert DOMAINBED[dataset][rule][METHODS[match.group(1)]] == values, (dataset, rule, match.group(1))
            seen += 1
    assert seen == sum(len(methods) for rules in DOMAINBED.values() for methods in rules.values()) == 5 * 3 * 5
