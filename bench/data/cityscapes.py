"""Cityscapes at 128x256 as preprocessed by MTAN: 7-class semantic segmentation and inverse depth.

Files (lorenmt/mtan README, "Cityscapes 128x256"): ``<root>/cityscapes/{train,val}/{image,label_7,depth}/<i>.npy``
-- image (128, 256, 3) in [0, 1], label_7 (128, 256) with classes 0..6 and -1 unlabelled, depth
(128, 256, 1) disparity with 0 invalid (mtan issues #15, #25). Read by :mod:`bench.data.formats.mtan_npy`.

Protocol of the official PaLoRA code (nik-dim/palora ``src/datasets/cityscapes2.py``
``Cityscapes2SplitDataModule``; ``configs/experiment/cityscapes/cityscapes.yaml``;
``configs/general/data/cityscapes.yaml``): the 2,975 ``train`` samples are cut 2,500 train / 475
val with ``random_split(..., torch.Generator().manual_seed(42))``; test is the 500 ``val`` samples;
train samples get the random scale-crop (1.0 / 1.2 / 1.5, disparity divided by the scale, as
officially) and a horizontal flip; images stay in [0, 1]. SegNet, Adam 1e-4, batch 8, 100 epochs,
StepLR(75, 0.5), validation every 20 epochs. See datasets/cityscapes/README.md.

Hypervolume: the default (``official``) is the official one, on the test segmentation cross-entropy
and depth L1 loss, reference (1, 1); ``miou-abs_err`` is on (1 - mIoU, abs_err), reference (1, 0.1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, HypervolumeDefinition, Objective, Split
from bench.data.formats.mtan_npy import Layout, NpyScenes, declare_prepare, load_split
from bench.data.kit.dense import depth, segmentation

URLS = ("https://www.dropbox.com/sh/gaw6vh6qusoyms6/AADwWi0Tp3E3M4B2xzeGlsEna?dl=0",)
LAYOUT = Layout(
    name="cityscapes",
    tasks=(("segmentation", "label_7", "label"), ("depth", "depth", "depth")),
    expected={"train": 2975, "val": 500},
    train_fraction=(2500, 2975),
    split_seed=42,
    urls=URLS,
    archive="MTAN's preprocessed Cityscapes 128x256 archive, 651 MB",
)
NUM_CLASSES = 7
HV_REFERENCE = (1.0, 1.0)
"""(segmentation cross-entropy, depth L1 loss): the official reference (1, 1); see the data card."""
HV_OFFICIAL_NOTE = (
    "The official definition: pymoo HV on (sem/loss, depth/loss) with reference (1, 1), the only Cityscapes "
    "HV the official code computes (nik-dim/palora src/callbacks/utils/pareto_front_visualizer.py, "
    "compute_hypervolume and the Cityscapes2 pairs)."
)
HV_MIOU_ABS_ERR = HypervolumeDefinition(
    name="miou-abs_err",
    coordinates=(("segmentation", "miou"), ("depth", "abs_err")),
    reference=(1.0, 0.1),
    note="Ours: the task metrics (1 - mIoU, disparity absolute error); 0.1 is about a fifth of the "
    "disparity range of the files (0 to about 0.49, mtan#25).",
)


def loss_hv(objective: Objective) -> Objective:
    """``objective`` with its ``loss`` metric as its hypervolume coordinate."""
    return dataclasses.replace(objective, hv_metric="loss")


def load(root: Path, split: Split) -> NpyScenes:
    return load_split(LAYOUT, root, split)


CITYSCAPES = register_dataset(
    DatasetSpec(
        name="cityscapes",
        description="Cityscapes 128x256 (MTAN .npy files): 7-class segmentation and disparity (2 tasks), SegNet",
        input_shape=(3, 128, 256),
        objectives=(loss_hv(segmentation("segmentation", NUM_CLASSES)), loss_hv(depth("depth"))),
        backbone="segnet",
        backbone_options={"head_init": "pytorch"},  # official segnet_cityscapes.py: heads outside the xavier init
        hv_reference=HV_REFERENCE,
        hv_name="official",
        hv_note=HV_OFFICIAL_NOTE,
        hv_alternatives=(HV_MIOU_ABS_ERR,),
        load=load,
        split_sizes={"train": 2500, "val": 475, "test": 500},
        train_defaults={
            "train.epochs": 100,
            "train.batch_size": 8,
            "train.lr": 1e-4,
            "train.lr_step": 75,
            "train.lr_gamma": 0.5,
            "train.eval_batch_size": 8,  # official: the training batch (`valid_batch_size` unset); PHN's BN sees it
            "train.eval_every": 20,
        },
        eval_points_per_edge=11,
    )
)
declare_prepare(LAYOUT)
