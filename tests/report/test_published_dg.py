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


TLLIB = Path(__file__).parent / "data" / "tllib_dg_benchmarks.rst"
TLLIB_ROWS = {"ERM": ("erm", "bn"), "IBN": ("erm", "ibn_b"), "MixStyle": ("erm", "mixstyle"),
              "GroupDRO": ("group_dro", "bn"), "CORAL": ("coral", "bn")}


def test_every_tllib_number_is_its_benchmark_pages() -> None:
    from dabin.report.published_dg import TLLIB_DG

    seen, dataset = 0, None
    for line in TLLIB.read_text().splitlines():
        if line.endswith("accuracy on ResNet-50"):
            dataset = {"PACS": "pacs", "Office-Home": "office_home"}[line.split()[0]]
        elif dataset and line.startswith("Methods"):
            header = line.split()[1:]  # avg first in tllib's table; dabin's order is DomainBed's
            assert header[1:] + header[:1] == [c.lower() if c == "Avg" else c for c in DOMAINBED_COLUMNS[dataset]]
        elif dataset and line.split() and line.split()[0] in TLLIB_ROWS:
            name, average, *domains = line.split()
            assert TLLIB_DG[dataset][TLLIB_ROWS[name]] == (*map(float, domains), float(average)), (dataset, name)
            seen += 1
    assert seen == sum(map(len, TLLIB_DG.values())) == 10
