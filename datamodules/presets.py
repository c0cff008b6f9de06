"""The published datasets dabin knows by name: their domains, classes, sizes and official splits.

Each entry of :data:`DATASETS` says what the release holds (domain and class folder names, images
per domain), how its archive is laid out, and which split the papers that report on it use for
source->target adaptation (:attr:`DatasetInfo.transfer_protocol`, read by
:mod:`datamodules.splits`). Recognising a tree as one of them is :mod:`datamodules.catalog`'s job,
reading the official list files :mod:`datamodules.official`'s.

Every name and count below is quoted from the source named in its entry (the DomainBed repository
``facebookresearch/DomainBed`` is cited at commit b93c22a; thuml/CDAN at c904cd3, CDTrans/CDTrans
at e390076, VisionLearningGroup/taskcv-2017-public at 370d5dd). Images per class, where a source
lists them, are in the packaged ``datamodules/lists/class_counts.txt`` (:func:`class_counts`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

from datamodules.naming import domain_key
from datamodules.officehome import ARCHIVE_FOLDER, OFFICE_HOME_COUNTS, OFFICE_HOME_DOMAINS, office_home_list

__all__ = ["DATASETS", "LAYOUT", "DatasetInfo", "TransferProtocol", "class_counts", "dataset_key"]

#: The layout every dataset is read in (the words of every layout error).
LAYOUT = "<Domain>/<Class>/<image>"

#: How a dataset's published adaptation protocol splits a domain (:mod:`datamodules.splits`):
#: ``"transductive"``: every image is both training data (labelled for a source, unlabelled for the
#: target) and test data; ``"lists"``: the release's ``<domain>_train.txt`` / ``<domain>_test.txt``.
TransferProtocol = Literal["transductive", "lists"]


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about one published dataset.

    Attributes:
        name: Display name (``"PACS"``).
        domains: Official domain folder names, in the order DomainBed numbers them (sorted folder
            names; Office-Home: the paper's order, which is the same; the digits: MNIST, USPS, SVHN,
            the order the digit benchmarks introduce them).
        classes: Official class folder names (the dataset's own label order), None if unknown.
        counts: Images per domain in the release, by official domain name.
        num_classes: Number of classes.
        archive_folder: Top folder of the official archive, if it has one.
        source: Where the names and counts come from.
        layout: The layout of one image below the root, as layout errors write it (Office-31:
            ``<Domain>/images/<Class>/<image>``, its archive's extra level).
        transfer_protocol: The split of the published adaptation protocol, None where dabin knows
            none (then the transfer module's default is its seeded 80/20 split).
        split_sizes: Official ``(train, test)`` list lengths per domain (``"lists"`` protocol).
        set_aside: Folders the release has beside its domains that are no domain (VisDA-2017's
            unlabelled ``test/``), by folder name, with why; read past with a note.
        domain_lists: Name of the list file the release keeps in every domain folder (VisDA-2017's
            ``image_list.txt``), checked against the tree; None if it has none.
        all_domains: Every domain is needed (VisDA-2017's two are the source and the target).
    """

    name: str
    domains: tuple[str, ...]
    classes: tuple[str, ...] | None = field(repr=False)
    counts: dict[str, int] = field(hash=False)
    num_classes: int
    archive_folder: str | None
    source: str
    layout: str = LAYOUT
    transfer_protocol: TransferProtocol | None = None
    split_sizes: dict[str, tuple[int, int]] = field(default_factory=dict, hash=False, repr=False)
    set_aside: dict[str, str] = field(default_factory=dict, hash=False, repr=False)
    domain_lists: str | None = None
    all_domains: bool = False

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
        return f"expected {root}/{self.layout} with <Domain> one of {', '.join(self.domains)} ({self.name})"


def dataset_key(info: DatasetInfo) -> str:
    """The key of a dataset in :data:`DATASETS` (``"pacs"``)."""
    return next(key for key, value in DATASETS.items() if value is info)


_OFFICE_HOME_CLASSES = tuple(sorted({path.split("/")[1] for path, _ in office_home_list(OFFICE_HOME_DOMAINS[0])},
                                    key=lambda c: (c.lower(), c)))

# Office-31's 31 classes in the official label order (alphabetical): thuml/Transfer-Learning-Library
# tllib/vision/datasets/office31.py (Office31.CLASSES); the labels of thuml/CDAN's
# data/office/{amazon,dslr,webcam}_list.txt index this tuple (every line checked).
_OFFICE_31_CLASSES = (
    "back_pack", "bike", "bike_helmet", "bookcase", "bottle", "calculator", "desk_chair", "desk_lamp",
    "desktop_computer", "file_cabinet", "headphones", "keyboard", "laptop_computer", "letter_tray", "mobile_phone",
    "monitor", "mouse", "mug", "paper_notebook", "pen", "phone", "printer", "projector", "punchers", "ring_binder",
    "ruler", "scissors", "speaker", "stapler", "tape_dispenser", "trash_can",
)

# VisDA-2017's 12 classes, labels 0..11 in this order: the category IDs of the challenge's
# classification/README.md (taskcv-2017-public) and tllib's VisDA2017.CLASSES; the labels of thuml/CDAN's
# data/visda-2017/validation_list.txt index this tuple.
_VISDA_CLASSES = ("aeroplane", "bicycle", "bus", "car", "horse", "knife", "motorcycle", "person", "plant",
                  "skateboard", "train", "truck")

# DomainNet's 345 classes in the official label order: index + 1 is the NNN of the official file
# names <domain>_NNN_<n>.jpg. Copied from thuml/Transfer-Learning-Library (tllib/vision/datasets/
# domainnet.py, DomainNet.CLASSES); every one of the 9,431 paths in DomainBed's
# domainbed/misc/domain_net_duplicates.txt (329 classes, 5 domains) has its class at that index, and
# every line of the official lists (CDTrans's data/domainnet/*_{train,test}.txt) has its label there.
# Label order is not dabin's alphabetical class index ("t-shirt" is 327 here, before "table" there).
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
    # Official lists (tllib's image_list/<domain>_{train,test}.txt, CDTrans's data/domainnet/): test
    # 14,604 / 15,582 / 21,850 / 51,750 / 52,041 / 20,916 lines, train 33,525 / 36,023 / 50,416 /
    # 48,212 for clipart, infograph, painting, sketch (counted); quickdraw's and real's train lists
    # (too large for that copy) are the domain less its test list, 120,750 and 120,906, which sums
    # to the published 409,832. painting_train.txt has no t-shirt and painting_test.txt no syringe.
    "domainnet": DatasetInfo(
        name="DomainNet", domains=("clipart", "infograph", "painting", "quickdraw", "real", "sketch"),
        classes=_DOMAINNET_CLASSES,
        counts={"clipart": 48129, "infograph": 51605, "painting": 72266, "quickdraw": 172500, "real": 172947,
                "sketch": 69128},
        num_classes=345, archive_folder=None,
        source="Peng et al., ICCV 2019 (Moment Matching for Multi-Source DA), cleaned; DomainBed's domain_net/",
        transfer_protocol="lists",
        split_sizes={"clipart": (33525, 14604), "infograph": (36023, 15582), "painting": (50416, 21850),
                     "quickdraw": (120750, 51750), "real": (120906, 52041), "sketch": (48212, 20916)}),
    # Folders, classes, layout: the archive domain_adaptation_images/<domain>/images/<class>/frame_NNNN.jpg
    # (every path of thuml/CDAN's data/office/*_list.txt; tllib's Office31 docstring shows the same
    # <domain>/images/<class>/ level). Counts: those lists' 2,817 / 498 / 795 = 4,110 lines, frames
    # numbered 1..n in every class. Protocol: every image of both domains (Long et al., ICML 2015 and
    # CDAN, NeurIPS 2018; tllib trains and tests on the whole target list).
    "office_31": DatasetInfo(
        name="Office-31", domains=("amazon", "dslr", "webcam"), classes=_OFFICE_31_CLASSES,
        counts={"amazon": 2817, "dslr": 498, "webcam": 795}, num_classes=31, archive_folder="domain_adaptation_images",
        source="Saenko et al., ECCV 2010; thuml/CDAN data/office/*_list.txt",
        layout="<Domain>/images/<Class>/<image>", transfer_protocol="transductive"),
    # Layout (taskcv-2017-public classification/README.md): train/<category>/<section>_<object>_<cam_yaw>_
    # <light_yaw>_<cam_pitch>.png, validation/<category>/<object_id>.jpg, test/<trunk_id>/<md5>.jpg
    # (unlabelled), an image_list.txt in each (lines <class>/<file> <label>: CDTrans's
    # data/visda/validation/valid_image_list.txt). Counts: validation 55,388 (thuml/CDAN's
    # validation_list.txt lines), test 72,372 in 20 trunks (CDTrans's data/visda/test/image_list.txt),
    # train 152,397 (Peng et al., arXiv:1710.06924, as quoted by the papers reporting on it; its list
    # was not readable here). Protocol: train (synthetic) -> validation (real), every image of both
    # (tllib, CDAN, the challenge's validation phase).
    "visda2017": DatasetInfo(
        name="VisDA-2017", domains=("train", "validation"), classes=_VISDA_CLASSES,
        counts={"train": 152397, "validation": 55388}, num_classes=12, archive_folder=None,
        source="Peng et al., arXiv:1710.06924 (VisDA: The Visual Domain Adaptation Challenge), classification track",
        transfer_protocol="transductive", domain_lists="image_list.txt", all_domains=True,
        set_aside={"test": "VisDA-2017's unlabelled test images (test/<trunk>/), not a labelled domain"}),
    # The digits tree datamodules/digits.py writes: <Domain>/<digit>/<file>.png, lists <Domain>_{train,test}.txt
    # in DomainNet's format at the root. Official splits: MNIST 60,000 / 10,000 (LeCun et al.; TFDS
    # mnist), USPS 7,291 / 2,007 (Hull, 1994; thuml/CDAN's usps_{train,test}.txt lines), SVHN
    # 73,257 / 26,032 (Netzer et al., 2011, cropped digits without "extra"; TFDS svhn_cropped).
    "digits": DatasetInfo(
        name="Digits", domains=("MNIST", "USPS", "SVHN"), classes=tuple(str(digit) for digit in range(10)),
        counts={"MNIST": 70000, "USPS": 9298, "SVHN": 99289}, num_classes=10, archive_folder=None,
        source="MNIST (LeCun et al.), USPS (Hull), SVHN (Netzer et al.) as datamodules/digits.py exports them",
        transfer_protocol="lists",
        split_sizes={"MNIST": (60000, 10000), "USPS": (7291, 2007), "SVHN": (73257, 26032)}),
}


@lru_cache(maxsize=1)
def _class_count_table() -> dict[tuple[str, str, str], tuple[int, ...]]:
    table = {}
    text = (resources.files("datamodules") / "lists" / "class_counts.txt").read_text()
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, domain, split, *counts = line.split()
            table[key, domain, split] = tuple(map(int, counts))
    return table


def class_counts(key: str, domain: str, split: str = "all") -> tuple[int, ...] | None:
    """Images per class (official class order) of one domain's whole release or official list, if a source lists them.

    Args:
        key: Dataset key (``"domainnet"``).
        domain: Official domain name.
        split: ``"all"`` (the whole domain), ``"train"`` or ``"test"`` (its official lists).

    Returns:
        One count per class, or None where no source was read (``datamodules/lists/class_counts.txt``
        names the sources: Office-31's domains, VisDA-2017's validation, DomainNet's lists but
        quickdraw's and real's train lists, USPS and MNIST's test list).
    """
    return _class_count_table().get((key, domain, split))
