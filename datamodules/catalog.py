"""The domain-generalization datasets dabin knows by name: their domains, classes and sizes.

Any ``root/<Domain>/<Class>/<image>`` tree works (:mod:`datamodules.tree`); a tree whose domain
folders are those of a dataset below (in any spelling: ``Art_Painting``, ``art painting``) and whose
class folders are mostly that dataset's is *recognised*: its domains get their official names and
order, and :func:`check_layout` compares it with the release (a missing domain, missing or foreign
class folders, per-domain counts: warnings), while a recognised tree laid out wrong (an extra domain
folder, class folders where domain folders belong) is a one-line :class:`~dabin.errors.DabinError`
naming the expected layout. Office-Home keeps its own rules (:mod:`datamodules.officehome`: all four
domains required); its entry here is built from that module.

Every name and count below is quoted from the source named in its entry (the DomainBed repository
``facebookresearch/DomainBed`` is cited at commit b93c22a). PACS's official split files
(``<domain>_{train,crossval,test}_kfold.txt``) are read by :func:`read_pacs_splits`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dabin.errors import DabinError
from datamodules.naming import domain_key
from datamodules.officehome import ARCHIVE_FOLDER, OFFICE_HOME_COUNTS, OFFICE_HOME_DOMAINS, office_home_list

__all__ = ["DATASETS", "DatasetInfo", "TreeView", "check_domains", "check_layout", "dataset_info", "identify",
           "layout_hint", "pacs_split_folder", "read_pacs_splits", "recognise"]

#: The layout every dataset is read in (the words of every layout error).
LAYOUT = "<Domain>/<Class>/<image>"


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about one published dataset.

    Attributes:
        name: Display name (``"PACS"``).
        domains: Official domain folder names, in the order DomainBed numbers them (sorted folder
            names; Office-Home: the paper's order, which is the same).
        classes: Official class folder names (the dataset's own label order), None if unknown.
        counts: Images per domain in the release, by official domain name.
        num_classes: Number of classes.
        archive_folder: Top folder of the official archive, if it has one.
        source: Where the names and counts come from.
    """

    name: str
    domains: tuple[str, ...]
    classes: tuple[str, ...] | None = field(repr=False)
    counts: dict[str, int] = field(hash=False)
    num_classes: int
    archive_folder: str | None
    source: str

    @property
    def total(self) -> int:
        """Images in the release."""
        return sum(self.counts.values())

    def canonical(self, name: str) -> str | None:
        """Official spelling of a domain folder written any way (``"Art Painting"``), else None."""
        key = domain_key(name)
        return next((domain for domain in self.domains if domain_key(domain) == key), None)

    def expected_layout(self, root: str | os.PathLike[str]) -> str:
        """``expected <root>/<Domain>/<Class>/<image> with <Domain> one of ...`` (for layout errors)."""
        return f"expected {root}/{LAYOUT} with <Domain> one of {', '.join(self.domains)} ({self.name})"


_OFFICE_HOME_CLASSES = tuple(sorted({path.split("/")[1] for path, _ in office_home_list(OFFICE_HOME_DOMAINS[0])},
                                    key=lambda c: (c.lower(), c)))

# DomainNet's 345 classes in the official label order: index + 1 is the NNN of the official file
# names <domain>_NNN_<n>.jpg. Copied from thuml/Transfer-Learning-Library (tllib/vision/datasets/
# domainnet.py, DomainNet.CLASSES); every one of the 9,431 paths in DomainBed's
# domainbed/misc/domain_net_duplicates.txt (329 classes, 5 domains) has its class at that index.
_DOMAINNET_CLASSES = (
    "aircraft_carrier", "airplane", "alarm_clock", "ambulance", "angel", "animal_migration", "ant", "anvil",
    "apple", "arm", "asparagus", "axe", "backpack", "banana", "bandage", "barn", "baseball", "baseball_bat",
    "basket", "basketball", "bat", "bathtub", "beach", "bear", "beard", "bed", "bee", "belt", "bench",
    "bicycle", "binoculars", "bird", "birthday_cake", "blackberry", "blueberry", "book", "boomerang",
    "bottlecap", "bowtie", "bracelet", "brain", "bread", "bridge", "broccoli", "broom", "bucket", "bulldozer",
    "bus", "bush", "butterfly", "cactus", "cake", "calculator", "calendar", "camel", "camera", "camouflage",
    "campfire", "candle", "cannon", "canoe", "car", "carrot", "castle", "cat", "ceiling_fan", "cello",
    "cell_phone", "chair", "chandelier", "church", "circle", "clarinet", "clock", "cloud", "coffee_cup",
    "compass", "computer", "cookie", "cooler", "couch", "cow", "crab", "crayon", "crocodile", "crown",
    "cruise_ship", "cup", "diamond", "dishwasher", "diving_board", "dog", "dolphin", "donut", "door", "dragon",
    "dresser", "drill", "drums", "duck", "dumbbell", "ear", "elbow", "elephant", "envelope", "eraser", "eye",
    "eyeglasses", "face", "fan", "feather", "fence", "finger", "fire_hydrant", "fireplace", "firetruck",
    "fish", "flamingo", "flashlight", "flip_flops", "floor_lamp", "flower", "flying_saucer", "foot", "fork",
    "frog", "frying_pan", "garden", "garden_hose", "giraffe", "goatee", "golf_club", "grapes", "grass",
    "guitar", "hamburger", "hammer", "hand", "harp", "hat", "headphones", "hedgehog", "helicopter", "helmet",
    "hexagon", "hockey_puck", "hockey_stick", "horse", "hospital", "hot_air_balloon", "hot_dog", "hot_tub",
    "hourglass", "house", "house_plant", "hurricane", "ice_cream", "jacket", "jail", "kangaroo", "key",
    "keyboard", "knee", "knife", "ladder", "lantern", "laptop", "leaf", "leg", "light_bulb", "lighter",
    "lighthouse", "lightning", "line", "lion", "lipstick", "lobster", "lollipop", "mailbox", "map", "marker",
    "matches", "megaphone", "mermaid", "microphone", "microwave", "monkey", "moon", "mosquito", "motorbike",
    "mountain", "mouse", "moustache", "mouth", "mug", "mushroom", "nail", "necklace", "nose", "ocean",
    "octagon", "octopus", "onion", "oven", "owl", "paintbrush", "paint_can", "palm_tree", "panda", "pants",
    "paper_clip", "parachute", "parrot", "passport", "peanut", "pear", "peas", "pencil", "penguin", "piano",
    "pickup_truck", "picture_frame", "pig", "pillow", "pineapple", "pizza", "pliers", "police_car", "pond",
    "pool", "popsicle", "postcard", "potato", "power_outlet", "purse", "rabbit", "raccoon", "radio", "rain",
    "rainbow", "rake", "remote_control", "rhinoceros", "rifle", "river", "roller_coaster", "rollerskates",
    "sailboat", "sandwich", "saw", "saxophone", "school_bus", "scissors", "scorpion", "screwdriver",
    "sea_turtle", "see_saw", "shark", "sheep", "shoe", "shorts", "shovel", "sink", "skateboard", "skull",
    "skyscraper", "sleeping_bag", "smiley_face", "snail", "snake", "snorkel", "snowflake", "snowman",
    "soccer_ball", "sock", "speedboat", "spider", "spoon", "spreadsheet", "square", "squiggle", "squirrel",
    "stairs", "star", "steak", "stereo", "stethoscope", "stitches", "stop_sign", "stove", "strawberry",
    "streetlight", "string_bean", "submarine", "suitcase", "sun", "swan", "sweater", "swing_set", "sword",
    "syringe", "table", "teapot", "teddy-bear", "telephone", "television", "tennis_racquet", "tent",
    "The_Eiffel_Tower", "The_Great_Wall_of_China", "The_Mona_Lisa", "tiger", "toaster", "toe", "toilet",
    "tooth", "toothbrush", "toothpaste", "tornado", "tractor", "traffic_light", "train", "tree", "triangle",
    "trombone", "truck", "trumpet", "t-shirt", "umbrella", "underwear", "van", "vase", "violin",
    "washing_machine", "watermelon", "waterslide", "whale", "wheel", "windmill", "wine_bottle", "wine_glass",
    "wristwatch", "yoga", "zebra", "zigzag",
)

DATASETS: dict[str, DatasetInfo] = {
    "office_home": DatasetInfo(
        name="Office-Home", domains=OFFICE_HOME_DOMAINS, classes=_OFFICE_HOME_CLASSES, counts=dict(OFFICE_HOME_COUNTS),
        num_classes=len(_OFFICE_HOME_CLASSES), archive_folder=ARCHIVE_FOLDER,
        source="Venkateswara et al., CVPR 2017; datamodules/officehome.py and its packaged official lists"),
    # Folder names: DomainBed's PACS copy (the authors' kfold/ archive, renamed PACS/). Counts: the
    # published 2,048 / 2,344 / 1,670 / 3,929 = 9,991 (paperswithcode's PACS page, the flwrlabs/pacs
    # dataset card and Dassl's PACS docstring agree). Classes: the authors' label order 1..7.
    "pacs": DatasetInfo(
        name="PACS", domains=("art_painting", "cartoon", "photo", "sketch"),
        classes=("dog", "elephant", "giraffe", "guitar", "horse", "house", "person"),
        counts={"art_painting": 2048, "cartoon": 2344, "photo": 1670, "sketch": 3929}, num_classes=7,
        archive_folder="kfold",
        source="Li et al., ICCV 2017 (Deeper, Broader and Artier Domain Generalization); DomainBed's PACS/"),
    # Folders, classes and counts: DomainBed's domainbed/misc/vlcs_files.txt (10,729 lines
    # `<source> VLCS/<Domain>/<class>/`); the held-out and training sizes of DomainBed's own VLCS
    # test sweep (domainbed/misc/test_sweep_data, holdout 0.2) give the same counts (1132+283,
    # 2125+531, 2626+656, 2701+675).
    "vlcs": DatasetInfo(
        name="VLCS", domains=("Caltech101", "LabelMe", "SUN09", "VOC2007"),
        classes=("bird", "car", "chair", "dog", "person"),
        counts={"Caltech101": 1415, "LabelMe": 2656, "SUN09": 3282, "VOC2007": 3376}, num_classes=5,
        archive_folder="VLCS", source="Fang et al., ICCV 2013; DomainBed's VLCS/ (domainbed/misc/vlcs_files.txt)"),
    # Folders and classes: DomainBed's download script (location_<n> for locations 38, 46, 100, 43;
    # include_categories). Counts: the 24,788-image copy of the DomainBed paper, 4,879 / 9,767 /
    # 4,020 / 6,122 (khanrc/miro issue #9, from the MIRO authors, and the image lists of
    # muse1998/Source-Free-Domain-Generalization, image_list/Terra, agree line for line). DomainBed's
    # download script today yields 24,330 images (miro issue #9, DomainBed issue #58; per location
    # not published), so such a copy is recognised with count warnings.
    "terra_incognita": DatasetInfo(
        name="TerraIncognita", domains=("location_100", "location_38", "location_43", "location_46"),
        classes=("bird", "bobcat", "cat", "coyote", "dog", "empty", "opossum", "rabbit", "raccoon", "squirrel"),
        counts={"location_100": 4879, "location_38": 9767, "location_43": 4020, "location_46": 6122}, num_classes=10,
        archive_folder=None, source="Beery et al., ECCV 2018; DomainBed's terra_incognita/ (24,788 images)"),
    # Folders: DomainBed's download script (one zip per domain, no top folder). Counts: the
    # "# Cleaned" row of the official page (mirrored in datasets-mila/datasets--domainnet README):
    # 48,129 / 51,605 / 72,266 / 172,500 / 172,947 / 69,128 = 586,575, which is also the size of the
    # official train + test lists (409,832 + 176,743). DomainBed deletes its duplicates list from the
    # original zips: 1,596 / 3,493 / 2,380 / 1,258 of infograph / painting / real / sketch give exactly
    # these counts; its clipart list has 704 entries where the official cleaning removed 708.
    "domainnet": DatasetInfo(
        name="DomainNet", domains=("clipart", "infograph", "painting", "quickdraw", "real", "sketch"),
        classes=_DOMAINNET_CLASSES,
        counts={"clipart": 48129, "infograph": 51605, "painting": 72266, "quickdraw": 172500, "real": 172947,
                "sketch": 69128},
        num_classes=345, archive_folder=None,
        source="Peng et al., ICCV 2019 (Moment Matching for Multi-Source DA), cleaned; DomainBed's domain_net/"),
}


def dataset_info(name: str) -> DatasetInfo:
    """A dataset by key or name in any spelling (``"pacs"``, ``"TerraIncognita"``, ``"Office-Home"``).

    Raises:
        DabinError: Unknown name; the message lists the known ones.
    """
    key = domain_key(name)
    for dataset_key, info in DATASETS.items():
        if key in (domain_key(dataset_key), domain_key(info.name)):
            return info
    raise DabinError(f"unknown dataset {name!r}; known: {', '.join(info.name for info in DATASETS.values())}")


def identify(domain_names: Sequence[str]) -> DatasetInfo | None:
    """The dataset whose domains these folders are (at least two of them, any spelling, nothing else).

    Args:
        domain_names: Domain folder names found under a root.

    Returns:
        The dataset, or None. No two datasets share more than one domain name, so at most one fits.
    """
    if len({domain_key(name) for name in domain_names}) < 2:
        return None
    return next((info for info in DATASETS.values() if all(info.canonical(name) for name in domain_names)), None)


def _closest(domain_names: Sequence[str]) -> DatasetInfo | None:
    """The one dataset (not Office-Home) with the most, and at least two, of these domains; other folders allowed."""
    scores = [(len({info.canonical(n) for n in domain_names} - {None}), info)
              for key, info in DATASETS.items() if key != "office_home"]
    best = max(score for score, _ in scores)
    winners = [info for score, info in scores if score == best]
    return winners[0] if best >= 2 and len(winners) == 1 else None


def _known_classes(info: DatasetInfo, class_names: Sequence[str]) -> int:
    known = {name.casefold() for name in info.classes or ()}
    return sum(name.casefold() in known for name in class_names)


def recognise(root: str | os.PathLike[str], domain_folders: Sequence[str],
              class_names: Sequence[str]) -> DatasetInfo | None:
    """Which dataset a tree is, raising when it is one laid out wrong.

    A tree is a dataset's when at least two of its domain folders are that dataset's domains and more
    than half of its class folders are that dataset's classes (``photo/``, ``sketch/`` holding
    ``bird/``, ``cat/`` is someone's own dataset, not PACS). Office-Home is never returned: the tree
    recognises it by :func:`~datamodules.officehome.is_office_home`, with its own rules (all four
    domains required, other folders make a custom tree).

    Args:
        root: The tree's root (for messages).
        domain_folders: Its domain folder names.
        class_names: Its class folder names (all domains together).

    Returns:
        The dataset, or None for any other tree.

    Raises:
        DabinError: A recognised tree with a folder that is not one of the dataset's domains, or a
            tree whose domain folders are a dataset's classes and class folders its domains.
    """
    info = _closest(domain_folders)
    if info is not None and (info.classes is None or 2 * _known_classes(info, class_names) > len(class_names)):
        check_domains(info, domain_folders, root)
        return info
    swapped = _classes_of(domain_folders)
    if swapped is not None and sum(swapped.canonical(name) is not None for name in class_names) >= 2:
        raise DabinError(f"{root} holds <Class>/<Domain> folders ({', '.join(sorted(domain_folders)[:3])}, ...): "
                         f"{swapped.expected_layout(root)}")
    return None


def check_domains(info: DatasetInfo, domain_folders: Sequence[str], root: str | os.PathLike[str]) -> None:
    """Refuse domain folders that are not the dataset's (a stray folder beside them, a typo), or one spelled twice.

    Raises:
        DabinError: One line naming the folders and the expected layout.
    """
    unknown = sorted(name for name in domain_folders if info.canonical(name) is None)
    if unknown:
        what = "folder " + repr(unknown[0]) + " is not a" if len(unknown) == 1 else \
            "folders " + ", ".join(map(repr, unknown)) + " are not"
        raise DabinError(f"{info.name} tree {root}: {what} {info.name} domain{'s' if len(unknown) > 1 else ''}; "
                         f"{info.expected_layout(root)}")
    seen: dict[str, str] = {}
    for name in sorted(domain_folders):
        official = info.canonical(name) or name
        if official in seen:
            raise DabinError(f"{info.name} tree {root}: folders {seen[official]!r} and {name!r} are both domain "
                             f"{official!r}; keep one")
        seen[official] = name


def _classes_of(folder_names: Sequence[str]) -> DatasetInfo | None:
    """The dataset (not Office-Home) whose classes these folders are: all of them, and half of its classes."""
    for key, info in DATASETS.items():
        hits = _known_classes(info, folder_names)
        if key != "office_home" and hits == len(folder_names) >= 2 and 2 * hits >= info.num_classes:
            return info
    return None


def layout_hint(root: str | os.PathLike[str], folder_names: Sequence[str]) -> str:
    """For a root whose sub-folders hold images: ``"; these are PACS classes: expected ..."`` or ``""``.

    Args:
        root: The folder the user gave.
        folder_names: Its sub-folders (class folders, since they hold images).
    """
    info = _classes_of(folder_names)
    if info is None:
        return ""
    path = Path(root)
    if info.canonical(path.name) is not None:  # the user gave one domain folder of the dataset
        return (f"; these are {info.name} classes and {path.name!r} is one of its domains: give the folder "
                f"above it, {info.expected_layout(path.parent)}")
    return f"; these are {info.name} classes: {info.expected_layout(root)}"


class TreeView(Protocol):
    """What :func:`check_layout` and :func:`read_pacs_splits` read of a :class:`~datamodules.tree.DomainTree`."""

    root: Path
    class_names: list[str]
    samples: list[Any]

    @property
    def domain_names(self) -> list[str]: ...

    def counts(self) -> dict[str, int]: ...


def _some(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(map(repr, names[:limit]))
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def check_layout(info: DatasetInfo, tree: TreeView) -> list[str]:
    """Compare a recognised tree with the dataset's release.

    Args:
        info: The dataset (:func:`recognise`).
        tree: The scanned tree.

    Returns:
        Soft problems, one line each with the numbers: missing domains, missing or foreign class
        folders, per-domain image counts that differ from the release.

    Raises:
        DabinError: A domain that is not the dataset's (:func:`check_domains`).
    """
    check_domains(info, tree.domain_names, tree.root)
    problems = []
    present = {info.canonical(name) for name in tree.domain_names}
    missing = [domain for domain in info.domains if domain not in present]
    if missing:
        problems.append(f"{info.name} tree {tree.root} has {len(present)} of its {len(info.domains)} domains: "
                        f"missing {_some(missing)} ({sum(info.counts[d] for d in missing)} images in the release)")
    if info.classes is not None:
        found = {name.casefold() for name in tree.class_names}
        known = {name.casefold() for name in info.classes}
        absent = [name for name in info.classes if name.casefold() not in found]
        foreign = [name for name in tree.class_names if name.casefold() not in known]
        if absent:
            problems.append(f"{info.name} tree {tree.root} has {info.num_classes - len(absent)} of its "
                            f"{info.num_classes} classes: missing {_some(absent)}")
        if foreign:
            problems.append(f"{info.name} tree {tree.root} has {len(foreign)} class folder(s) that are not "
                            f"{info.name} classes: {_some(foreign)}")
    for name, count in tree.counts().items():
        expected = info.counts[info.canonical(name) or name]
        if count != expected:
            problems.append(f"{info.name} domain {name!r} has {count} images, expected {expected} ({tree.root})")
    return problems


# --------------------------------------------------------------------------------------------
# PACS's official splits

#: The three split files of every PACS domain: ``<domain>_<split>_kfold.txt``.
PACS_SPLITS: tuple[str, ...] = ("train", "crossval", "test")


def pacs_split_folder(tree: TreeView) -> Path | None:
    """Where a PACS tree's official split files are, if anywhere dabin looks.

    Looked for (``<domain>_train_kfold.txt`` of one of the tree's domains) in the tree's root, its
    parent (the root was the folder holding ``kfold/``), and ``splits/`` in either (Dassl's layout).

    Returns:
        The folder, or None.
    """
    first = DATASETS["pacs"].canonical(tree.domain_names[0]) or tree.domain_names[0]
    for folder in (tree.root, tree.root.parent, tree.root / "splits", tree.root.parent / "splits"):
        if (folder / f"{first}_train_kfold.txt").is_file():
            return folder
    return None


def read_pacs_splits(tree: TreeView, folder: str | os.PathLike[str] | None = None) -> dict[str, tuple[list[Any],
                                                                                                  list[Any]]]:
    """The authors' train / validation split of every domain of a PACS tree, as the tree's samples.

    Reads ``<domain>_train_kfold.txt`` and ``<domain>_crossval_kfold.txt`` (lines
    ``<domain>/<class>/<file> <label>``, label 1..7 in the order dog ... person; any path prefix
    before ``<domain>/`` is ignored). ``<domain>_test_kfold.txt`` lists the whole domain (the test
    set of a held-out domain) and is not read. Each line's label must name its class folder, and
    its image must be in the tree; the samples keep dabin's labels (alphabetical class index: the
    authors' label minus one when the tree has all seven classes).

    Args:
        tree: A scanned PACS tree (:class:`~datamodules.tree.DomainTree`, possibly of fewer domains).
        folder: The folder holding the split files; None: :func:`pacs_split_folder`.

    Returns:
        Official domain name -> ``(train samples, validation samples)``, each in tree order.

    Raises:
        DabinError: Not a PACS tree, no split files, a file missing, a malformed line, a label
            that is not its folder's class, an image that is not in the tree, an image in both splits.
    """
    pacs = DATASETS["pacs"]
    names = [pacs.canonical(name) for name in tree.domain_names]
    if not all(names):
        raise DabinError(f"PACS split files need a PACS tree; {tree.root} has domains {', '.join(tree.domain_names)}")
    where = Path(folder).expanduser() if folder is not None else pacs_split_folder(tree)
    if where is None:
        raise DabinError(f"no PACS split files (<domain>_train_kfold.txt) in {tree.root} or {tree.root.parent}")
    order = {id(sample): index for index, sample in enumerate(tree.samples)}
    by_key = {(sample.domain, sample.key.casefold()): sample for sample in tree.samples}
    classes = {name.casefold(): index for index, name in enumerate(pacs.classes or ())}
    result: dict[str, tuple[list[Any], list[Any]]] = {}
    for domain, name in enumerate(names):
        parts = []
        for split in PACS_SPLITS[:2]:
            path = where / f"{name}_{split}_kfold.txt"
            if not path.is_file():
                raise DabinError(f"PACS split file {path} does not exist")
            parts.append(_read_split_file(path, str(name), domain, classes, by_key, tree.root))
        overlap = {id(s) for s in parts[0]} & {id(s) for s in parts[1]}
        if overlap:
            sample = next(s for s in parts[1] if id(s) in overlap)
            raise DabinError(f"{sample.path} is in both {name}_train_kfold.txt and {name}_crossval_kfold.txt")
        train, val = (sorted(part, key=lambda s: order[id(s)]) for part in parts)
        result[str(name)] = (train, val)
    return result


def _read_split_file(path: Path, domain_name: str, domain: int, classes: dict[str, int],
                     by_key: dict[tuple[int, str], Any], root: Path) -> list[Any]:
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.rsplit(maxsplit=1)
        parts = Path(fields[0].replace("\\", "/")).parts if len(fields) == 2 else ()
        if len(parts) < 3 or not fields[1].isdigit():
            raise DabinError(f"{where}: expected '<domain>/<class>/<file> <label>', found {line!r}")
        listed_domain, class_name, file_name = parts[-3:]
        label = int(fields[1]) - 1
        if domain_key(listed_domain) != domain_key(domain_name):
            raise DabinError(f"{where}: image of domain {listed_domain!r} in the split file of {domain_name!r}")
        if classes.get(class_name.casefold()) != label:
            raise DabinError(f"{where}: label {label + 1} is not the class of folder {class_name!r} "
                             f"(PACS labels 1..7 are dog, elephant, giraffe, guitar, horse, house, person)")
        sample = by_key.get((domain, f"{class_name}/{file_name}".casefold()))
        if sample is None:
            raise DabinError(f"{where}: listed image {domain_name}/{class_name}/{file_name} is not in {root}")
        samples.append(sample)
    return samples
