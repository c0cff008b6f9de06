"""DomainBed's published results (Gulrajani & Lopez-Paz, ICLR 2021) for the methods dabin has.

Transcribed from facebookresearch/DomainBed ``domainbed/results/2020_10_06_7df6f06/results.tex`` (ResNet-50
pretrained on ImageNet, Adam, a random hyper-parameter search, 3 trial seeds; test accuracy (%) of the
test domain's 80 % part, mean over trial seeds; DomainBed's DANN alternates discriminator and
generator steps, dabin's ``dg_dann`` reverses gradients: see :mod:`dabin.methods.dg_dann`).
``tests/report/test_published_dg.py`` re-reads that file and checks every number.
"""

from __future__ import annotations

__all__ = ["DOMAINBED", "DOMAINBED_COLUMNS", "DOMAINBED_SETTING", "TLLIB_DG", "TLLIB_DG_SETTING"]

#: What the published numbers ran on.
DOMAINBED_SETTING = "DomainBed's ResNet-50 (ImageNet), random search, 3 trial seeds; the test domain's 80 % part"

#: Dataset -> its table's columns: the test domains as DomainBed abbreviates them, in its order, then Avg.
DOMAINBED_COLUMNS: dict[str, tuple[str, ...]] = {
    "vlcs": ("C", "L", "S", "V", "Avg"),
    "pacs": ("A", "C", "P", "S", "Avg"),
    "office_home": ("A", "C", "P", "R", "Avg"),
    "terra_incognita": ("L100", "L38", "L43", "L46", "Avg"),
    "domainnet": ("clip", "info", "paint", "quick", "real", "sketch", "Avg"),
}

#: Dataset -> rule (:data:`dabin.report.generalization.RULES`) -> method -> the row (columns as above).
DOMAINBED: dict[str, dict[str, dict[str, tuple[float, ...]]]] = {
    "vlcs": {
        "training_domain": {
            "erm": (97.7, 64.3, 73.4, 74.6, 77.5),
            "group_dro": (97.3, 63.4, 69.5, 76.7, 76.7),
            "coral": (98.3, 66.1, 73.4, 77.5, 78.8),
            "mmd": (97.7, 64.0, 72.8, 75.3, 77.5),
            "dg_dann": (99.0, 65.1, 73.1, 77.2, 78.6),
        },
        "leave_one_domain_out": {
            "erm": (98.0, 62.6, 70.8, 77.5, 77.2),
            "group_dro": (98.1, 66.4, 71.0, 76.1, 77.9),
            "coral": (96.9, 65.7, 73.3, 78.7, 78.7),
            "mmd": (98.3, 65.6, 69.7, 75.7, 77.3),
            "dg_dann": (97.3, 63.7, 72.6, 74.2, 76.9),
        },
        "oracle": {
            "erm": (97.6, 67.9, 70.9, 74.0, 77.6),
            "group_dro": (97.7, 65.9, 72.8, 73.4, 77.4),
            "coral": (97.3, 67.5, 71.6, 74.5, 77.7),
            "mmd": (98.8, 66.4, 70.8, 75.6, 77.9),
            "dg_dann": (99.0, 66.3, 73.4, 80.1, 79.7),
        },
    },
    "pacs": {
        "training_domain": {
            "erm": (84.7, 80.8, 97.2, 79.3, 85.5),
            "group_dro": (83.5, 79.1, 96.7, 78.3, 84.4),
            "coral": (88.3, 80.0, 97.5, 78.8, 86.2),
            "mmd": (86.1, 79.4, 96.6, 76.5, 84.6),
            "dg_dann": (86.4, 77.4, 97.3, 73.5, 83.6),
        },
        "leave_one_domain_out": {
            "erm": (83.2, 76.8, 97.2, 74.8, 83.0),
            "group_dro": (84.4, 77.3, 96.8, 75.6, 83.5),
            "coral": (80.5, 74.5, 96.8, 78.6, 82.6),
            "mmd": (84.9, 75.1, 96.1, 76.5, 83.2),
            "dg_dann": (84.3, 72.4, 96.5, 70.8, 81.0),
        },
        "oracle": {
            "erm": (86.5, 81.3, 96.2, 82.7, 86.7),
            "group_dro": (87.5, 82.9, 97.1, 81.1, 87.1),
            "coral": (86.6, 81.8, 97.1, 82.7, 87.1),
            "mmd": (88.1, 82.6, 97.1, 81.2, 87.2),
            "dg_dann": (87.0, 80.3, 96.8, 76.9, 85.2),
        },
    },
    "office_home": {
        "training_domain": {
            "erm": (61.3, 52.4, 75.8, 76.6, 66.5),
            "group_dro": (60.4, 52.7, 75.0, 76.0, 66.0),
            "coral": (65.3, 54.4, 76.5, 78.4, 68.7),
            "mmd": (60.4, 53.3, 74.3, 77.4, 66.3),
            "dg_dann": (59.9, 53.0, 73.6, 76.9, 65.9),
        },
        "leave_one_domain_out": {
            "erm": (61.1, 50.7, 74.6, 76.4, 65.7),
            "group_dro": (59.9, 51.0, 73.7, 76.0, 65.2),
            "coral": (64.5, 54.8, 76.6, 78.1, 68.5),
            "mmd": (60.8, 53.7, 50.2, 76.0, 60.2),
            "dg_dann": (60.2, 52.2, 71.3, 76.0, 64.9),
        },
        "oracle": {
            "erm": (61.7, 53.4, 74.1, 76.2, 66.4),
            "group_dro": (60.5, 53.1, 75.5, 75.9, 66.2),
            "coral": (64.8, 54.1, 76.5, 78.2, 68.4),
            "mmd": (60.4, 53.4, 74.9, 76.1, 66.2),
            "dg_dann": (60.6, 51.8, 73.4, 75.5, 65.3),
        },
    },
    "terra_incognita": {
        "training_domain": {
            "erm": (49.8, 42.1, 56.9, 35.7, 46.1),
            "group_dro": (41.2, 38.6, 56.7, 36.4, 43.2),
            "coral": (51.6, 42.2, 57.0, 39.8, 47.6),
            "mmd": (41.9, 34.8, 57.0, 35.2, 42.2),
            "dg_dann": (51.1, 40.6, 57.4, 37.7, 46.7),
        },
        "leave_one_domain_out": {
            "erm": (34.4, 38.1, 55.7, 37.4, 41.4),
            "group_dro": (45.2, 40.1, 55.8, 38.3, 44.9),
            "coral": (52.4, 39.7, 56.1, 37.1, 46.3),
            "mmd": (49.1, 42.0, 55.3, 39.5, 46.5),
            "dg_dann": (46.9, 38.8, 55.5, 36.2, 44.4),
        },
        "oracle": {
            "erm": (59.4, 49.3, 60.1, 43.2, 53.0),
            "group_dro": (60.4, 48.3, 58.6, 42.2, 52.4),
            "coral": (60.4, 47.2, 59.3, 44.4, 52.8),
            "mmd": (60.6, 45.9, 57.8, 43.8, 52.0),
            "dg_dann": (55.2, 47.0, 57.2, 42.9, 50.6),
        },
    },
    "domainnet": {
        "training_domain": {
            "erm": (58.1, 18.8, 46.7, 12.2, 59.6, 49.8, 40.9),
            "group_dro": (47.2, 17.5, 33.8, 9.3, 51.6, 40.1, 33.3),
            "coral": (59.2, 19.7, 46.6, 13.4, 59.8, 50.1, 41.5),
            "mmd": (32.1, 11.0, 26.8, 8.7, 32.7, 28.9, 23.4),
            "dg_dann": (53.1, 18.3, 44.2, 11.8, 55.5, 46.8, 38.3),
        },
        "leave_one_domain_out": {
            "erm": (58.1, 17.8, 47.0, 12.2, 59.2, 49.5, 40.6),
            "group_dro": (47.2, 17.0, 33.8, 9.2, 51.6, 39.2, 33.0),
            "coral": (59.2, 19.5, 46.2, 13.4, 59.1, 49.5, 41.1),
            "mmd": (32.2, 11.0, 26.8, 8.7, 32.7, 28.9, 23.4),
            "dg_dann": (52.7, 18.0, 44.2, 11.8, 55.5, 46.8, 38.2),
        },
        "oracle": {
            "erm": (58.6, 19.2, 47.0, 13.2, 59.9, 49.8, 41.3),
            "group_dro": (47.2, 17.5, 34.2, 9.2, 51.9, 40.1, 33.4),
            "coral": (59.2, 19.9, 47.4, 14.0, 59.8, 50.4, 41.8),
            "mmd": (32.2, 11.2, 26.8, 8.8, 32.7, 29.0, 23.5),
            "dg_dann": (53.1, 18.3, 44.2, 11.9, 55.5, 46.8, 38.3),
        },
    },
}

#: tllib's published DG benchmark (thuml/Transfer-Learning-Library, ``docs/dglib/benchmarks/image_classification.rst``
#: at 09d0eb81): ResNet-50 (ImageNet), SGD with a cosine schedule, the checkpoint with the best training-domain
#: validation accuracy, one seed; IBN is IBN-Net's IBN-b ResNet-50 (``ibn.sh``: ``-a resnet50_ibn_b``), MixStyle
#: its random variant after layer1–3 on PACS, layer1–2 on Office-Home (``mixstyle.sh``). The only published
#: numbers found here for IBN-Net and MixStyle under leave-one-domain-out classification (their papers' own DG
#: tables could not be read here). Checked in ``tests/report/test_published_dg.py``.
TLLIB_DG_SETTING = ("tllib's ResNet-50 (ImageNet), SGD + cosine, best training-domain validation checkpoint, "
                    "one seed; the whole test domain")

#: Dataset -> (method, norm) -> the row (columns as :data:`DOMAINBED_COLUMNS`: test domains, then Avg).
TLLIB_DG: dict[str, dict[tuple[str, str], tuple[float, ...]]] = {
    "pacs": {
        ("erm", "bn"): (88.5, 78.4, 97.2, 81.4, 86.4),
        ("erm", "ibn_b"): (88.2, 84.5, 97.1, 81.4, 87.8),
        ("erm", "mixstyle"): (87.8, 82.3, 95.0, 84.5, 87.4),
        ("group_dro", "bn"): (88.9, 81.7, 97.8, 80.8, 87.3),
        ("coral", "bn"): (89.1, 80.0, 97.4, 79.1, 86.4),
    },
    "office_home": {
        ("erm", "bn"): (68.3, 55.9, 78.9, 80.0, 70.8),
        ("erm", "ibn_b"): (67.4, 55.2, 77.3, 79.6, 69.9),
        ("erm", "mixstyle"): (66.8, 58.1, 78.0, 79.9, 71.7),
        ("group_dro", "bn"): (66.7, 55.2, 78.8, 79.9, 70.0),
        ("coral", "bn"): (68.3, 55.4, 78.8, 81.0, 70.9),
    },
}
