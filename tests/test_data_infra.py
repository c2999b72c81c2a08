"""The dataset-independent data path: split-level metrics, Dataset splits through DataLoader
workers, the hypervolume subset, the LR schedule, and backbone selection and weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from bench.backbones import create_backbone
from bench.core.errors import ConfigError, MissingDataError
from bench.core.hypervolume import minimization_points
from bench.core.registry import DATASETS, METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Metric
from bench.data.kit.batches import LoaderBatches, TensorBatches, make_batches
from bench.data.kit.objectives import classification
from bench.train.config import resolve
from bench.train.evaluate import evaluate
from bench.train.loop import Learner, Schedule, fit
from bench.train.runner import run_experiment, summary_hypervolume
from tests.support import tiny_spec


def make_spec(shape=(1, 28, 28), objectives=None, backbone="multilenet", ref=(1.0, 1.0), load=None, **kw):
    """A DatasetSpec with defaults from the tiny two-task spec."""
    base = tiny_spec(2)
    objectives = objectives or base.objectives
    return DatasetSpec("s", "test spec", shape, objectives, backbone, ref, load or base.load, **kw)


class PairsDataset(Dataset):
    """Items (x, {task: y}) from tensors, as an image dataset's __getitem__ returns them."""

    def __init__(self, x: torch.Tensor, targets: dict[str, torch.Tensor]) -> None:
        self.x, self.targets = x, targets

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], {k: v[i] for k, v in self.targets.items()}


class Identity(ConditionedNet):
    """Outputs the input itself for every objective (to test metrics)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, ray):
        return {n: x for n in self.names}


def test_loader_batches_give_the_same_samples_as_tensor_batches():
    x = torch.arange(10.0).view(10, 1)
    y = {"a": torch.arange(10)}
    tensors = list(make_batches((x, y), 4, torch.device("cpu")))
    loaded = list(make_batches(PairsDataset(x, y), 4, torch.device("cpu")))
    assert isinstance(make_batches(PairsDataset(x, y), 4, torch.device("cpu")), LoaderBatches)
    assert isinstance(make_batches((x, y), 4, torch.device("cpu")), TensorBatches)
    assert len(tensors) == len(loaded) == 3
    for (xa, ya), (xb, yb) in zip(tensors, loaded, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya["a"], yb["a"])
    limited = make_batches(PairsDataset(x, y), 4, torch.device("cpu"), limit=6)
    assert limited.num_samples == 6 and len(limited) == 2


def test_loader_batches_shuffle_reproducibly_with_workers():
    x = torch.arange(12.0).view(12, 1)
    data = PairsDataset(x, {"a": torch.arange(12)})

    def order(workers: int) -> list[int]:
        batches = make_batches(data, 5, torch.device("cpu"), torch.Generator().manual_seed(3), workers=workers)
        return [int(v) for xb, _ in batches for v in xb.flatten()]

    assert sorted(order(0)) == list(range(12)) and order(0) != list(range(12))
    assert order(0) == order(2)  # worker processes do not change which samples a step sees


def _confusion_metric(num_classes: int) -> Metric:
    """A dataset-level metric: accuracy of the majority class per batch would differ from the
    split-level value, so summing statistics is what the test checks."""

    def stats(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = output.argmax(1)
        return torch.bincount(target * num_classes + pred, minlength=num_classes**2)

    def finalize(sums: torch.Tensor) -> float:
        matrix = sums.view(num_classes, num_classes)
        union = matrix.sum(0) + matrix.sum(1) - matrix.diag()
        return float((matrix.diag() / union.clamp(min=1)).mean())

    return Metric("miou", stats, higher_is_better=True, best=1.0, finalize=finalize)


def test_split_level_metrics_sum_statistics_over_batches():
    torch.manual_seed(0)
    logits = torch.randn(50, 3)
    target = torch.randint(3, (50,))
    metric = _confusion_metric(3)
    base = classification("t", 3)
    objective = type(base)(base.name, base.loss_fn, (*base.metrics, metric), "accuracy", 3)
    spec = DatasetSpec("s", "d", (3,), (objective,), "mlp", (1.0,), lambda r, s: None)
    rows = evaluate(
        Identity(["t"]), make_batches((logits, {"t": target}), 7, torch.device("cpu")), torch.ones(1, 1), spec
    )
    values = {r["metric"]: r["value"] for r in rows}
    whole = metric.value(metric.statistics(logits, target).double())
    pred = logits.argmax(1)
    inter = torch.stack([((pred == c) & (target == c)).sum() for c in range(3)]).double()
    union = torch.stack([((pred == c) | (target == c)).sum() for c in range(3)]).double()
    assert values["miou"] == pytest.approx(whole) == pytest.approx(float((inter / union).mean()))
    assert values["accuracy"] == pytest.approx(float((pred == target).double().mean()))
    ce = torch.nn.functional.cross_entropy(logits.double(), target).item()
    assert values["loss"] == pytest.approx(ce, rel=1e-6)


def test_hypervolume_uses_the_declared_subset_in_objective_order():
    base = tiny_spec(3)
    spec = DatasetSpec(
        "sub",
        "d",
        base.input_shape,
        base.objectives,
        "multilenet",
        (1.0, 1.0),
        base.load,
        hv_objectives=("task2", "task0"),
    )
    front = [{"metrics": {f"task{k}": {"accuracy": 0.1 * (k + 1)} for k in range(3)}}]
    assert minimization_points(front, spec).tolist() == [[0.9, 0.7]]
    with pytest.raises(ValueError, match="coordinates"):
        DatasetSpec(
            "bad",
            "d",
            base.input_shape,
            base.objectives,
            "multilenet",
            (1.0,),
            base.load,
            hv_objectives=("task1", "task0"),
        )
    with pytest.raises(ValueError, match="not objectives"):
        DatasetSpec(
            "bad", "d", base.input_shape, base.objectives, "multilenet", (1.0,), base.load, hv_objectives=("nope",)
        )


def test_step_lr_halves_every_lr_step_epochs():
    spec = tiny_spec(2)
    method = METHODS.get("ls")(METHODS.get("ls").Hparams(), spec)
    cnet = method.build(lambda **kw: create_backbone("multilenet", spec, **kw))
    optimizer = torch.optim.Adam(method.param_groups(cnet, 1e-3), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5)
    x, y = spec.load(Path("."), "train")
    batches = make_batches((x[:8], {k: v[:8] for k, v in y.items()}), 8, torch.device("cpu"))
    learner = Learner(cnet, method, optimizer, spec.objectives, torch.Generator(), scheduler=scheduler)
    fit(learner, batches, Schedule(epochs=5), show_progress=False)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**2)  # after epochs 2 and 4


def test_a_dataset_split_runs_end_to_end_through_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    base = tiny_spec(2)

    def load(root, split):
        x, y = base.load(root, split)
        return PairsDataset(x, y)

    spec = DatasetSpec(
        "tiny-dataset-split",
        "random images as a Dataset",
        base.input_shape,
        base.objectives,
        "multilenet",
        (1.0, 1.0),
        load,
    )
    monkeypatch.setitem(DATASETS._items, spec.name, spec)
    monkeypatch.setitem(DATASETS._descriptions, spec.name, spec.description)
    cfg = resolve("palora", spec.name, assignments=["train.epochs=1", "train.batch_size=16", "train.lr_step=1"])
    summary = run_experiment(cfg, tmp_path, tmp_path, "cpu", show_progress=False, workers=1).summary
    assert summary["steps"] == 4 and len(summary["front"]) == 11 and 0 <= summary_hypervolume(summary) <= 1


def test_model_backbone_override_and_its_errors(tmp_path: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=["model.backbone=nope"])
    with pytest.raises(ConfigError, match="valid backbones: .*multilenet"):
        run_experiment(cfg, tmp_path, tmp_path, "cpu", show_progress=False)
    cfg = resolve("ls", "multimnist-mini", assignments=["model.backbone=mlp"])
    with pytest.raises(ConfigError, match="expects feature vectors"):
        run_experiment(cfg, tmp_path, tmp_path, "cpu", show_progress=False)


def test_imagenet_weights_are_looked_up_locally_and_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    spec = DATASETS.get("multimnist-mini")
    from bench.train.config import ModelConfig
    from bench.train.trial import backbone_factory

    with pytest.raises(ConfigError, match="resnet18-imagenet"):
        backbone_factory(spec, ModelConfig(backbone="resnet18", weights="imagenet"), tmp_path)
    with pytest.raises(MissingDataError) as err:
        backbone_factory(spec, ModelConfig(backbone="resnet18-imagenet", weights="imagenet"), tmp_path)
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and "download.pytorch.org" in message
    assert str(tmp_path / "weights") in message and "model.weights=" in message
    with pytest.raises(MissingDataError, match="does not exist"):
        backbone_factory(spec, ModelConfig(weights=str(tmp_path / "missing.pth")), tmp_path)


def test_resnet18_imagenet_loads_a_torchvision_state_dict_and_pads_ray_channels(tmp_path):
    import torchvision

    spec = DatasetSpec(
        "rgb", "d", (3, 64, 64), tiny_spec(2).objectives, "resnet18-imagenet", (1.0, 1.0), lambda r, s: None
    )
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    net = create_backbone("resnet18-imagenet", spec, weights=path, extra_inputs=2)
    assert torch.equal(net.encoder.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert torch.equal(net.encoder.conv1.weight[:, :3], reference.conv1.weight)
    assert torch.count_nonzero(net.encoder.conv1.weight[:, 3:]) == 0
    out = net(torch.rand(2, 5, 64, 64))
    assert out["task0"].shape == (2, 10)


def test_resnet18_small_stem_gives_the_official_2048_features():
    spec = make_spec((3, 64, 64), backbone="resnet18")
    net = create_backbone("resnet18", spec)
    assert net.encoder(torch.rand(2, 3, 64, 64)).shape == (2, 2048)
    assert net.encoder.conv1.kernel_size == (3, 3) and isinstance(net.encoder.maxpool, torch.nn.Identity)
    # torchvision's ResNet-18 body (11,176,512 without fc) with a 3x3 stem (1,728 instead of 9,408 conv1 weights)
    assert sum(p.numel() for p in net.encoder.parameters()) == 11_176_512 - 9_408 + 1_728
    assert net.heads["task0"].in_features == 2048


def test_mlp_layers_and_parameter_count():
    spec = make_spec((21,), backbone="mlp")
    net = create_backbone("mlp", spec, hidden=(256, 256, 256), extra_inputs=2)
    encoder = (23 * 256 + 256) + 2 * (256 * 256 + 256)
    heads = 2 * (256 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == encoder + heads
    assert net(torch.rand(4, 23))["task1"].shape == (4, 10)
