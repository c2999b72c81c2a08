"""NYUv2 at 288x384 as preprocessed by MTAN: 13-class segmentation, depth and surface normals.

Files (lorenmt/mtan README): ``<root>/nyuv2/{train,val}/{image,label,depth,normal}/<i>.npy`` --
image (288, 384, 3) in [0, 1], label (288, 384) with classes 0..12 and -1 unlabelled, depth
(288, 384, 1) in metres with 0 invalid, normal (288, 384, 3) unit vectors with all-zero invalid
pixels. Read by :mod:`bench.data.formats.mtan_npy`.

Protocol of the official PaLoRA code (nik-dim/palora ``src/datasets/nyuv2.py`` ``NYUv2DataModule``;
``configs/experiment/nyuv2/nyuv2.yaml``; ``configs/general/data/nyuv2.yaml``): the 795 ``train``
samples are cut by ``torch.randperm(795, generator=manual_seed(795))`` into 700 train / 95 val;
test is the 654 ``val`` samples; images are rescaled to [-1, 1] (``2 * im - 1``); train samples get
the official random scale (1.0 / 1.2 / 1.5: the sample resized up, then a 288x384 crop; depth
divided by the scale; :func:`bench.data.formats.mtan_npy.resize_crop`) and a horizontal flip that negates
the normals' x component. SegNet with unit-normalised normals, Adam 1e-4, batch 2, 200 epochs,
StepLR(100, 0.5), validation every 10 epochs. See datasets/nyuv2/README.md.
"""

from __future__ import annotations

from pathlib import Path

from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, Split
from bench.data.formats.mtan_npy import Layout, NpyScenes, declare_prepare, load_split
from bench.data.kit.dense import depth, normals, segmentation

URLS = ("https://www.dropbox.com/sh/86nssgwm6hm3vkb/AACrnUQ4GxpdrBbLjb6n-mWNa?dl=0",)
LAYOUT = Layout(
    name="nyuv2",
    tasks=(("segmentation", "label", "label"), ("depth", "depth", "depth"), ("normals", "normal", "normal")),
    expected={"train": 795, "val": 654},
    train_fraction=(700, 795),
    split_seed=795,
    image_scale=2.0,
    image_shift=-1.0,
    scale_mode="resize_crop",
    urls=URLS,
    archive="MTAN's preprocessed NYUv2 archive, 288x384",
)
NUM_CLASSES = 13
HV_REFERENCE = (1.0, 2.0, 90.0)
"""(1 - mIoU, depth abs_err in metres, mean normal angle in degrees): mIoU 0; a fifth of the 10 m
depth range; the expected angle of a random direction (chance). See the data card."""


def load(root: Path, split: Split) -> NpyScenes:
    return load_split(LAYOUT, root, split)


NYUV2 = register_dataset(
    DatasetSpec(
        name="nyuv2",
        description="NYUv2 288x384 (MTAN .npy files): 13-class segmentation, depth, surface normals (3 tasks), SegNet",
        input_shape=(3, 288, 384),
        objectives=(segmentation("segmentation", NUM_CLASSES), depth("depth"), normals("normals")),
        backbone="segnet",
        hv_reference=HV_REFERENCE,
        load=load,
        split_sizes={"train": 700, "val": 95, "test": 654},
        train_defaults={
            "train.epochs": 200,
            "train.batch_size": 2,
            "train.lr": 1e-4,
            "train.lr_step": 100,
            "train.lr_gamma": 0.5,
            "train.eval_batch_size": 2,  # official: the training batch (`valid_batch_size` unset); PHN's BN sees it
            "train.eval_every": 10,
        },
        eval_points_per_edge=11,
        backbone_options={"normalized_heads": ("normals",)},
    )
)
declare_prepare(
    LAYOUT,
    note="The two zips the official PaLoRA code fetches with gdown (train.zip and val.zip, each holding one "
    "split's folders) work too: --source train.zip --source val.zip.",
)
