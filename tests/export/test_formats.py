"""Every export format holds the preprocessing and gives the eager predictor's detections, run in a
process that cannot import ocrloc or timm.

The reference is the eager predictor on the image made grey (ITU-R 601 luma), scaled to [0, 1] and
padded with :func:`ocrloc.engine.inference.pad_to_rule`, written out here independently of
:mod:`ocrloc.preprocess`. One fixture exports a tiny model of each family once per format
(torch.export and ONNX take one input dtype each, so the dtypes are spread over the families), and
one subprocess runs them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from ocrloc.config import load_config
from ocrloc.engine.inference import pad_to_rule
from ocrloc.export import FlatDetector, export_program, export_torchscript
from ocrloc.export.program import trace_flat
from ocrloc.models.build import build
from tests.helpers import FAMILIES, TINY_DETECTOR as TINY, tiny_detector

onnx_export = pytest.importorskip("ocrloc.export.onnx", reason="needs onnx and onnxscript")
pytest.importorskip("onnxruntime")

# (batch, channels, height, width): batch 1 and 3, grey and colour, three sizes, none a multiple of 32 but 64.
SHAPES = [(1, 1, 64, 64), (3, 3, 100, 77), (3, 1, 128, 160), (1, 3, 100, 77)]
# (family, format, input dtype): every family and format, both dtypes per format.
ARTIFACTS = [
    ("centernet_offset", "torchscript", "uint8"), ("argmax", "torchscript", "float32"),
    ("centernet_offset", "export", "uint8"), ("argmax", "export", "float32"), ("centernet_heatmap", "export", "float32"),
    ("argmax_map", "export", "uint8"), ("argmax_map", "onnx", "uint8"), ("centernet_offset", "onnx", "float32"),
]
SUFFIX = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx"}

RUNNER = textwrap.dedent("""
    import json, sys, warnings
    sys.modules["ocrloc"] = None  # any import of ocrloc or timm now fails
    sys.modules["timm"] = None
    import numpy, torch, torchvision, onnxruntime
    jobs = json.load(open(sys.argv[1]))
    results, caught = {}, []
    for job in jobs:
        inputs = torch.load(job["inputs"])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if job["format"] == "torchscript":
                model = torch.jit.load(job["path"])
                run = lambda x: model(x)
                meta = {"rule": model.rule, "train_size": model.train_size, "class_names": model.class_names}
            elif job["format"] == "export":
                extra = {"ocrloc.json": ""}
                model = torch.export.load(job["path"], extra_files=extra).module()
                run = lambda x: model(x)
                meta = json.loads(extra["ocrloc.json"])
            else:
                session = onnxruntime.InferenceSession(job["path"], providers=["CPUExecutionProvider"])
                names = [o.name for o in session.get_outputs()]
                run = lambda x: {n: torch.from_numpy(v)
                                 for n, v in zip(names, session.run(None, {"images": x.numpy()}))}
                meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
            with torch.no_grad():
                outputs = [run(x) for x in inputs]
        if job["format"] != "torchscript":  # TorchScript's own deprecation is torch's to say
            caught += [f"{job['format']}: {w.category.__name__}: {w.message}" for w in seen
                       if issubclass(w.category, (DeprecationWarning, FutureWarning))]
        results[job["name"]] = {"outputs": outputs, "meta": meta}
    torch.save({"results": results, "warnings": caught}, sys.argv[2])
""")


def _grey_reference(images: torch.Tensor) -> torch.Tensor:
    """Grey float ``[B, 1, H, W]`` in [0, 1]: ITU-R 601 luma of RGB, uint8 / 255."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 3:
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return x


def _detector(family: str):
    detector = tiny_detector(family)
    dense = detector.model.dense if family.startswith("argmax") else detector.model
    # Boxes of about 12 px, as digits are: a random size head gives boxes of no height, on which the argmax
    # head's masked extremes divide by (almost) nothing and any rounding difference is magnified.
    torch.nn.init.constant_(dense.heads["size"][-1].bias, 3.0)
    if family.startswith("argmax"):  # a fitted score calibration (engine/calibration.py) travels in every format
        detector.model.score_calibration.copy_(torch.tensor([0.5, 1.5, 0.8]))
        detector.model.score_calibrated.fill_(1.0)
    return detector


def _by_position(detections):
    """The detections ordered by box corner: random weights give scores equal to ~1e-8, whose order
    rounding may swap, so the comparison pairs detections by place (the score order is asserted apart):
    by left, then top, right, bottom (two ink boxes can share a corner)."""
    order = torch.arange(detections["boxes"].shape[0])
    for column in (3, 2, 1, 0):  # stable sorts, the last key first: a lexicographic order
        order = order[torch.sort(detections["boxes"][order, column], stable=True).indices]
    return {k: v[order] for k, v in detections.items()}


def _inputs(dtype: str):
    generator = torch.Generator().manual_seed(1)
    if dtype == "uint8":
        return [torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator) for shape in SHAPES]
    return [torch.rand(shape, generator=generator) for shape in SHAPES]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each artifact written once (a .pt2 and .onnx of the same family and dtype share one trace), then
    all of them run in one subprocess without ocrloc or timm; also the export-time warnings."""
    folder = tmp_path_factory.mktemp("formats")
    detectors = {family: _detector(family) for family in {a[0] for a in ARTIFACTS}}
    jobs, caught, programs = [], [], {}
    for family, fmt, dtype in ARTIFACTS:
        name = f"{family}-{fmt}-{dtype}"
        path, inputs = folder / (name + SUFFIX[fmt]), folder / (name + ".inputs.pt")
        predictor, task = detectors[family].predictor, detectors[family].task
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if fmt == "torchscript":
                export_torchscript(predictor, "seed37", [128, 128], path, task)
            elif fmt == "export":
                programs[family, dtype] = export_program(predictor, "seed37", [128, 128], path, task, dtype)
            else:
                onnx_export.export_onnx(predictor, "seed37", [128, 128], path, task, dtype,
                                        program=programs.get((family, dtype)))
        caught += [f"{name}: {w.category.__name__}: {w.message}" for w in seen
                   if issubclass(w.category, (DeprecationWarning, FutureWarning))]
        # The batch of 0 travels with the others: an empty answer, whatever the format.
        torch.save(_inputs(dtype) + [torch.zeros((0, 1, 64, 64), dtype=getattr(torch, dtype))], inputs)
        jobs.append({"name": name, "format": fmt, "path": str(path), "inputs": str(inputs)})
    (folder / "jobs.json").write_text(json.dumps(jobs))
    run = subprocess.run([sys.executable, "-c", RUNNER, str(folder / "jobs.json"), str(folder / "out.pt")],
                         cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    loaded = torch.load(folder / "out.pt")
    return {"detectors": detectors, "results": loaded["results"], "load_warnings": loaded["warnings"],
            "export_warnings": caught, "folder": folder}


@pytest.mark.slow  # the exported fixture: torch.export and ONNX of every family
def test_a_pt2_archive_is_rooted_in_archive_not_in_its_temporary_name(exported):
    import zipfile

    files = sorted(exported["folder"].glob("*.pt2"))
    assert files and not list(exported["folder"].glob(".*.tmp*"))  # the atomic writes left nothing beside
    for path in files:
        assert {name.split("/", 1)[0] for name in zipfile.ZipFile(path).namelist()} == {"archive"}, path


def _per_image(outputs, fmt: str, batch: int):
    if fmt == "torchscript":
        return outputs
    index = outputs["batch_index"]
    assert index.dtype == torch.int64 and bool((index[1:] >= index[:-1]).all())  # image by image
    return [{k: outputs[k][index == i] for k in ("boxes", "scores", "labels", "keypoints")} for i in range(batch)]


@pytest.mark.slow  # the exported fixture: torch.export and ONNX of every family
@pytest.mark.parametrize("family,fmt,dtype", ARTIFACTS, ids=["-".join(a) for a in ARTIFACTS])
def test_the_file_alone_gives_the_eager_detections_for_any_size_channels_and_batch(exported, family, fmt, dtype):
    predictor = exported["detectors"][family].predictor
    result = exported["results"][f"{family}-{fmt}-{dtype}"]
    assert result["meta"]["rule"] == "seed37" and result["meta"]["train_size"] == [128, 128]
    assert result["meta"]["class_names"] == [str(d) for d in range(10)]
    *outputs, empty = result["outputs"]
    for images, got in zip(_inputs(dtype), outputs):
        with torch.no_grad():
            eager = predictor(pad_to_rule(_grey_reference(images), predictor))
        got = _per_image(got, fmt, images.shape[0])
        assert len(got) == len(eager) == images.shape[0]
        for e, g in zip(eager, got):
            assert len(e["scores"]) > 0  # a comparison of something
            assert bool((g["scores"][1:] <= g["scores"][:-1]).all())  # sorted by score
            e, g = _by_position(e), _by_position(g)
            assert g["labels"].dtype == torch.int64 and g["keypoints"].shape[1:] == (1, 3)
            for key in ("boxes", "scores", "labels", "keypoints"):
                assert e[key].shape == g[key].shape, (key, tuple(images.shape))
                assert (e[key].float() - g[key].float()).abs().max() <= 1e-4, (key, tuple(images.shape))
    if fmt == "torchscript":
        assert empty == []
    else:
        assert {k: tuple(v.shape) for k, v in empty.items()} == {
            "boxes": (0, 4), "scores": (0,), "labels": (0,), "keypoints": (0, 1, 3), "batch_index": (0,)}


@pytest.mark.slow  # the exported fixture: torch.export and ONNX of every family
def test_no_deprecation_warning_from_exporting_or_loading_the_export_and_onnx_files(exported):
    assert exported["export_warnings"] == []
    assert exported["load_warnings"] == []


def test_the_flat_graph_keeps_float_grey_multiples_of_32_unchanged():
    """Float grey input with H, W multiples of 32 (docs/task.md, "The exported model") passes the
    preprocessing unchanged, and the flat outputs are the eager ones."""
    detector = _detector("centernet_offset")
    images = torch.rand(2, 1, 64, 96)
    flat = FlatDetector(detector.predictor).eval()
    assert torch.equal(flat.preprocess(images), images)
    with torch.no_grad():
        outputs, eager = flat(images), detector.predictor(images)
    for i, e in enumerate(eager):
        mine = _by_position({k: v[outputs["batch_index"] == i] for k, v in outputs.items()})
        e = _by_position(e)
        assert len(e["scores"]) > 0 and torch.equal(mine["labels"], e["labels"])
        for key in ("boxes", "scores", "keypoints"):
            assert (mine[key] - e[key]).abs().max() <= 1e-5, key


@pytest.mark.parametrize("family", ["retinanet", "keypointrcnn", "study"])
def test_families_without_a_batched_graph_are_refused_naming_the_format_to_use(family):
    detector = build(load_config(None, [*TINY, *FAMILIES[family]]))
    with pytest.raises(ValueError, match="no batched graph for torch.export or ONNX.*export it as TorchScript"):
        trace_flat(detector.predictor)


def test_an_unknown_input_dtype_is_refused():
    with pytest.raises(ValueError, match="input dtype must be one of uint8, float32; got 'int16'"):
        trace_flat(_detector("centernet_offset").predictor, "int16")


@pytest.mark.slow  # the exported fixture: torch.export and ONNX of every family
def test_an_onnx_file_given_4_channels_says_channels(exported):
    """ONNX keeps no channel range (torch.export does): the node where 4 channels fail is named for them."""
    import numpy as np
    import onnxruntime

    files = sorted(exported["folder"].glob("*.onnx"))
    assert files
    for path in files:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        dtype = np.uint8 if "uint8" in path.name else np.float32
        session.run(None, {"images": np.zeros((1, 3, 64, 64), dtype)})  # 3 channels run
        with pytest.raises(Exception, match=f"Name:'{onnx_export.CHANNEL_CHECK}'") as err:
            session.run(None, {"images": np.zeros((1, 4, 64, 64), dtype)})
        assert "images_must_have_1_to_3_channels" in str(err.value), path.name


@pytest.mark.slow  # torch.export per family
@pytest.mark.parametrize("family", ["centernet_heatmap", "argmax"])
def test_the_pt2_graph_refuses_floats_outside_0_1_and_non_finite_values(tmp_path, family):
    """Issue 26: the float32 graph asserts its values (torch.export cannot format them: a fixed
    message); a batch of 0 and values in [0, 1] pass. (ONNX drops the assertion: README, Export.)"""
    import torchvision  # noqa: F401

    export_program(_detector(family).predictor, "seed37", [128, 128], tmp_path / "model.pt2", input_dtype="float32")
    loaded = torch.export.load(str(tmp_path / "model.pt2")).module()
    image = torch.rand(2, 1, 64, 64)
    for x in (image * 255, image - 1.0, image.clone().index_fill_(3, torch.tensor([7]), float("nan"))):
        with pytest.raises(RuntimeError, match=r"float images must hold finite values in \[0, 1\] \(divide "
                                               r"0..255 floats by 255, or pass uint8 images\)"):
            loaded(x)
    assert loaded(image)["boxes"].shape[1] == 4
    assert loaded(torch.zeros(0, 1, 64, 64))["scores"].shape == (0,)
