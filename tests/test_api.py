"""``ocrloc.Predictor``: checkpoint and export agree, every input kind reads the same, detections
come back in the given image's pixels (CPU, a tiny untrained model, seconds). The untrained model's
scores are far below the default threshold, so the comparisons ask for every detection (``score_threshold=0``)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from ocrloc.api import Detections, Predictor
from ocrloc.config import config_to_dict, load_config
from ocrloc.engine.checkpoint import CheckpointError, save_checkpoint
from ocrloc.engine.inference import detections_to_results, pad_to_rule
from ocrloc.export import export_torchscript
from ocrloc.models.build import build
from ocrloc.models.family import PredictorModule

TINY = ["model.type=centernet", "model.backbone=resnet10t", "model.fpn_channels=16", "model.head_channels=16",
        # Random weights give near-uniform heatmaps; keep every peak so the comparisons have detections.
        "postprocess.score_threshold=0.0"]
META = {"rule": "all10", "preset": "canvas128", "train_size": [128, 128]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny untrained detector saved as the trainer does, and exported."""
    torch.manual_seed(0)
    config = load_config(None, TINY)
    detector = build(config).eval()
    folder = tmp_path_factory.mktemp("api")
    state = {"model": detector.model.state_dict(), "config": config_to_dict(config), "meta": dict(META), "step": 0}
    save_checkpoint(state, folder / "model.pt")
    save_checkpoint({**state, "meta": {**META, "class_names": list("abcdefghij")}}, folder / "named.pt")
    export_torchscript(detector.predictor, "all10", [128, 128], folder / "model.ts")
    return {"checkpoint": folder / "model.pt", "named": folder / "named.pt", "exported": folder / "model.ts",
            "predictor": detector.predictor, "folder": folder}


@pytest.fixture(scope="module")
def api(files):
    return Predictor.from_checkpoint(files["checkpoint"], device="cpu")


def _canvas(height: int = 128, width: int = 128, seed: int = 0) -> np.ndarray:
    """uint8 light strokes on black, something for the random model to respond to."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, height - 12), rng.integers(0, width - 12)
        image[y:y + rng.integers(4, 12), x:x + rng.integers(2, 12)] = rng.integers(120, 256)
    return image


def _assert_same(a: Detections, b: Detections, atol: float = 1e-4) -> None:
    assert len(a) == len(b) > 0
    assert a.image_size == b.image_size
    for key in ("boxes", "scores", "points", "point_scores"):
        assert torch.allclose(getattr(a, key), getattr(b, key), atol=atol), key
    assert torch.equal(a.labels, b.labels) and a.class_names == b.class_names


def _direct(predictor: torch.nn.Module, image: Tensor) -> Dict[str, Tensor]:
    """The predictor module on the manually padded ``[H, W]`` image, boxes and points clipped and sorted."""
    height, width = image.shape
    with torch.no_grad():
        det = predictor(pad_to_rule(image[None, None], predictor))[0]
    order = torch.sort(det["scores"], descending=True, stable=True).indices
    boxes = det["boxes"][order].clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    points = det["keypoints"][order][..., :2].clone()  # [N, K, 2]
    points[..., 0] = points[..., 0].clamp(0, width)
    points[..., 1] = points[..., 1].clamp(0, height)
    return {"boxes": boxes, "scores": det["scores"][order], "labels": det["labels"][order], "points": points}


def test_loaders_and_attributes(files, api):
    assert api.rule == "all10" and api.train_size == [128, 128] and api.device == torch.device("cpu")
    assert api.class_names == [str(i) for i in range(10)]
    assert "multiples of" in api.input_rule and api.source == "checkpoint"
    exported = Predictor.from_exported(files["exported"])
    assert exported.rule == "all10" and exported.train_size == [128, 128] and exported.source == "exported"
    assert exported.class_names == api.class_names and exported.input_rule == api.input_rule
    assert Predictor(files["checkpoint"], device="cpu").source == "checkpoint"
    assert Predictor(files["checkpoint"]).device.type in ("cpu", "cuda")  # device "auto"
    assert Predictor(files["named"], device="cpu").class_names == list("abcdefghij")


def test_checkpoint_and_export_agree(files, api):
    image = _canvas()
    exported = Predictor.from_exported(files["exported"])
    _assert_same(api(image, score_threshold=0), exported(image, score_threshold=0))


def test_every_input_kind_gives_the_same_detections(files, api, tmp_path):
    image = _canvas(seed=1)
    path = tmp_path / "canvas.png"
    Image.fromarray(image).save(path)
    reference = api(image, score_threshold=0)
    colour = np.stack([image] * 3, axis=-1)
    variants = {
        "str path": str(path), "Path": path, "PIL": Image.fromarray(image), "PIL RGB": Image.fromarray(colour),
        "numpy float32": image.astype(np.float32) / 255, "numpy float64": image / 255.0,
        "numpy HxWx1": image[:, :, None], "numpy RGB": colour, "numpy RGBA": np.dstack([colour, image * 0 + 7]),
        "tensor uint8 HW": torch.from_numpy(image), "tensor float CHW": torch.from_numpy(image)[None].float() / 255,
        "tensor RGB CHW": torch.from_numpy(colour).permute(2, 0, 1).contiguous(),
    }
    for name, item in variants.items():
        result = api(item, score_threshold=0)
        assert isinstance(result, Detections), name
        _assert_same(reference, result)
    # a [B, C, H, W] tensor: B results
    batch = api(torch.from_numpy(image)[None, None].repeat(2, 1, 1, 1), score_threshold=0)
    assert isinstance(batch, list) and len(batch) == 2
    for result in batch:
        _assert_same(reference, result)


def test_colour_is_converted_with_pil_luma(api):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    grey = np.array(Image.fromarray(rgb).convert("L"))
    _assert_same(api(grey, score_threshold=0), api(rgb, score_threshold=0), atol=0)
    from ocrloc.preprocess import array_to_grey

    floats = rgb.astype(np.float32) / 255
    expected = floats[..., 0] * 0.299 + floats[..., 1] * 0.587 + floats[..., 2] * 0.114
    assert torch.allclose(array_to_grey(floats, "x"), torch.from_numpy(expected), atol=1e-6)


def test_any_size_in_original_coordinates(files, api):
    image = _canvas(100, 77, seed=2)
    result = api(image, score_threshold=0)
    direct = _direct(files["predictor"], torch.from_numpy(image).float() / 255)
    assert result.image_size == (100, 77) and len(result) > 0
    for key in ("boxes", "scores", "points"):
        assert torch.allclose(getattr(result, key), direct[key], atol=1e-5), key
    assert torch.equal(result.labels, direct["labels"])
    assert (result.boxes[:, 0::2] >= 0).all() and (result.boxes[:, 0::2] <= 77).all()
    assert (result.boxes[:, 1::2] >= 0).all() and (result.boxes[:, 1::2] <= 100).all()
    assert (result.points[..., 0] <= 77).all() and (result.points[..., 1] <= 100).all()


def test_dark_on_light_inverts(api):
    image = _canvas(seed=4)
    _assert_same(api(image, score_threshold=0), api(255 - image, polarity="dark_on_light", score_threshold=0))
    with pytest.raises(ValueError, match="polarity"):
        api(image, polarity="white")


def test_list_of_mixed_sizes_in_order(api):
    images = [_canvas(seed=5), _canvas(100, 77, seed=6), _canvas(seed=7), _canvas(64, 96, seed=8), _canvas(seed=9)]
    singles = [api(image, score_threshold=0) for image in images]
    for batch_size in (32, 2):
        results = api(images, batch_size=batch_size, score_threshold=0)
        assert isinstance(results, list) and len(results) == len(images)
        for single, result in zip(singles, results):
            _assert_same(single, result)
    assert api([]) == []


def test_score_threshold_sorting_and_outputs(api):
    image = _canvas(seed=10)
    every = api(image, score_threshold=0)
    assert (every.scores[:-1] >= every.scores[1:]).all()
    cut = float(every.scores[len(every) // 2])
    some = api(image, score_threshold=cut)
    assert 0 < len(some) < len(every) and (some.scores >= cut).all()
    as_dict = some.to_dict()
    assert as_dict["keypoints"].shape == (len(some), 1, 3)
    coco = some.to_coco(image_id=7)
    assert coco == detections_to_results([as_dict], [7])
    first = coco[0]
    assert first["image_id"] == 7 and first["category_id"] == int(some.labels[0])
    x1, y1, x2, y2 = some.boxes[0].tolist()
    assert first["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    assert first["keypoints"] == pytest.approx([*some.points[0, 0].tolist(), float(some.scores[0])])


class _Fixed(PredictorModule):
    """Returns the same detections on every image: one box reaching into the padding."""

    def __init__(self, max_size: int = 0) -> None:
        super().__init__(32, 32, max_size)

    def forward(self, images: Tensor) -> List[Dict[str, Tensor]]:
        det = {"boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0], [-5.0, 50.0, 90.0, 120.0]]),
               "scores": torch.tensor([0.2, 0.9]), "labels": torch.tensor([3, 12]),
               "keypoints": torch.tensor([[[20.0, 30.0, 0.1]], [[85.0, 110.0, 0.8]]])}
        return [det for _ in range(images.shape[0])]


def test_clipping_sorting_and_names_on_a_fixed_model():
    result = Predictor.from_module(_Fixed())(np.zeros((100, 77), np.uint8), score_threshold=0)
    assert result.scores.tolist() == pytest.approx([0.9, 0.2])
    assert result.boxes.tolist() == [[0.0, 50.0, 77.0, 100.0], [10.0, 20.0, 30.0, 40.0]]
    assert result.points.tolist() == [[[77.0, 100.0]], [[20.0, 30.0]]]
    assert result.point_scores[:, 0].tolist() == pytest.approx([0.8, 0.1])
    assert result.class_names == ["12", "3"]  # a module without class names: each label by its number


def test_big_endian_arrays_read_as_their_values_and_a_meta_tensor_is_one_clear_error(api):
    image = _canvas(seed=2).astype(np.uint16) * 257  # 16-bit: 0..65535
    reference = api(image, score_threshold=0)
    # the same values, stored big-endian (a raw 16-bit PNG)
    _assert_same(reference, api(image.astype(">u2"), score_threshold=0))
    _assert_same(reference, api((image / 65535.0).astype(">f8"), score_threshold=0))
    with pytest.raises(ValueError) as err:
        api(torch.empty(1, 64, 64, device="meta"))
    assert str(err.value) == ("input: a meta tensor of shape (1, 64, 64) holds no values; pass a tensor on the CPU "
                              "or a GPU")


def test_bad_inputs_raise_clear_errors(api, files, tmp_path):
    with pytest.raises(ValueError, match="5-D"):
        api(torch.zeros(1, 1, 1, 32, 32))
    missing = tmp_path / "nowhere" / "digit.png"
    with pytest.raises(FileNotFoundError, match="digit.png"):
        api(missing)
    with pytest.raises(FileNotFoundError, match="digit.png"):
        api([_canvas(), str(missing)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        api(np.full((32, 32), 200.0, np.float32))
    with pytest.raises(ValueError, match="channels"):
        api(np.zeros((32, 32, 2), np.uint8))
    with pytest.raises(TypeError, match="dict"):
        api({"image": 1})
    with pytest.raises(ValueError, match="300 x 40"):
        Predictor.from_module(_Fixed(max_size=256))(np.zeros((300, 40), np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Predictor(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        Predictor(junk)
    with pytest.raises(ValueError, match="from_exported"):
        Predictor.from_checkpoint(files["exported"])


def _png_header(path: pathlib.Path, width: int, height: int) -> pathlib.Path:
    """A PNG of ``width`` x ``height`` whose pixel data is missing: any decoder fails on it, so only a
    check of the header's size can refuse it by size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_an_image_past_max_pixels_is_refused_before_it_is_decoded(files, tmp_path):
    """Issue 26: a 10000 x 10000 image ran into the allocator after 30 s; now the size is read from the
    header and refused in one line (DEFAULT_MAX_PIXELS unless max_pixels says otherwise)."""
    from ocrloc.api import DEFAULT_MAX_PIXELS

    huge = _png_header(tmp_path / "huge.png", 10000, 10000)
    api = Predictor.from_checkpoint(files["checkpoint"], device="cpu")
    assert api.max_pixels == DEFAULT_MAX_PIXELS == 40_000_000
    with pytest.raises(ValueError) as info:
        api(huge)
    message = str(info.value)
    assert message.startswith(f"input ({huge}): 10000 x 10000 px is 100,000,000 pixels, more than max_pixels "
                              f"40,000,000") and "--max-pixels" in message and "\n" not in message
    small = Predictor(files["checkpoint"], device="cpu", max_pixels=32 * 48 - 1)
    canvas = _canvas(32, 48)
    png = tmp_path / "canvas.png"
    Image.fromarray(canvas).save(png)
    for item in (png, canvas, torch.from_numpy(canvas), Image.fromarray(canvas), torch.zeros(2, 1, 32, 48)):
        with pytest.raises(ValueError, match="32 x 48 px is 1,536 pixels, more than max_pixels 1,535"):
            small(item)
    assert len(Predictor(files["checkpoint"], device="cpu", max_pixels=32 * 48)(png).image_size) == 2
    unlimited = Predictor.from_exported(files["exported"], max_pixels=0)
    with pytest.raises(Exception) as info:  # no limit: PIL gets to decode it, and finds no pixel data
        unlimited(huge)
    assert "max_pixels" not in str(info.value)
    for bad in (-1, 1.5, True, "many"):
        with pytest.raises(ValueError, match="max_pixels must be a whole number >= 0"):
            Predictor.from_module(_Fixed(), max_pixels=bad)


class _Touch:
    """Unpickling this creates ``marker`` (a crafted checkpoint could run any code instead)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_bad_checkpoints_raise_the_loaders_one_line_error(files, tmp_path):
    crafted = tmp_path / "crafted.pt"
    torch.save({"model": {}, "config": {}, "x": _Touch(tmp_path / "pwned")}, crafted)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(files["checkpoint"].read_bytes()[:1000])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path, expected in [(crafted, "refused"), (truncated, "truncated or corrupt"), (empty, "empty")]:
        for load in (Predictor, Predictor.from_checkpoint):
            with pytest.raises(CheckpointError, match=expected) as err:  # a ValueError, passed on unchanged
                load(path)
            assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="a folder"):
        Predictor(tmp_path)


def test_an_exported_file_given_as_a_checkpoint_is_refused_and_never_loaded(files, tmp_path, monkeypatch):
    """An exported file is a program: Predictor(path) reads checkpoints only, whatever the file is called,
    and says how to run the file on purpose; torch.jit.load (which builds its code) is never reached."""
    disguised = tmp_path / "best.pt"
    disguised.write_bytes(files["exported"].read_bytes())
    loaded = []

    def jit_load(*args, **kwargs):
        loaded.append(args)
        raise AssertionError("torch.jit.load was called")

    with monkeypatch.context() as patch:
        patch.setattr(torch.jit, "load", jit_load)
        for load in (Predictor, Predictor.from_checkpoint):
            with pytest.raises(ValueError) as err:
                load(disguised)
            message = str(err.value)
            assert message.startswith(f"{disguised}: an exported TorchScript file, not a checkpoint")
            assert "\n" not in message
            assert f"ocrloc predict --exported {disguised}" in message and "Predictor.from_exported" in message
    assert loaded == []
    assert Predictor.from_exported(disguised).source == "exported"  # asked for by name, it runs


def test_import_ocrloc_stays_light():
    code = ("import sys, ocrloc; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'Predictor' in dir(ocrloc) and 'Predictor' in ocrloc.__all__; "
            "from ocrloc.api import Predictor; assert ocrloc.Predictor is Predictor; "
            "assert ocrloc.Detections.__name__ == 'Detections'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


# --- every exported format, polarity, threshold, checkpoint metadata (issue 27) -------------------------------


def _by_position(det: Detections) -> Dict[str, Tensor]:
    """The detections ordered by box corner: random weights give near-equal scores whose order rounding
    may swap, so two runs are compared detection by detection in place (their score order apart)."""
    order = torch.argsort(det.boxes[:, 0].double() * 4096 + det.boxes[:, 1].double())
    return {key: getattr(det, key)[order] for key in ("boxes", "scores", "labels", "points")}


@pytest.fixture(scope="module")
def flat_files(files):
    """The tiny model of ``files`` as a torch.export .pt2 and an ONNX file (one trace, uint8 input)."""
    pytest.importorskip("onnxruntime")
    onnx_export = pytest.importorskip("ocrloc.export.onnx", reason="needs onnx and onnxscript")
    from ocrloc.export import export_program

    program = export_program(files["predictor"], "all10", [128, 128], files["folder"] / "model.pt2")
    onnx_export.export_onnx(files["predictor"], "all10", [128, 128], files["folder"] / "model.onnx", program=program)
    return {"pt2": files["folder"] / "model.pt2", "onnx": files["folder"] / "model.onnx"}


@pytest.mark.parametrize("kind", ["torchscript", "pt2", "onnx"])
def test_from_exported_runs_every_format_with_the_checkpoint_s_detections(files, flat_files, api, kind):
    path = files["exported"] if kind == "torchscript" else flat_files[kind]
    exported = Predictor.from_exported(path)
    assert exported.source == "exported" and exported.format == {"torchscript": "torchscript", "pt2": "torch.export",
                                                                  "onnx": "onnx"}[kind]
    assert (exported.rule, exported.train_size, exported.class_names) == (api.rule, api.train_size, api.class_names)
    assert exported.input_rule == api.input_rule
    # a canvas, a size no multiple of 32, a colour light page (inverted by polarity auto), a batch of two
    pages = [_canvas(seed=20), _canvas(100, 77, seed=21), np.stack([255 - _canvas(96, 128, seed=22)] * 3, axis=-1)]
    expected, got = api(pages, score_threshold=0), exported(pages + [pages[0]], score_threshold=0)
    assert [d.polarity for d in got] == ["light_on_dark", "light_on_dark", "dark_on_light", "light_on_dark"]
    for e, g in zip(expected + expected[:1], got):
        assert len(e) == len(g) > 0 and e.image_size == g.image_size
        assert bool((g.scores[1:] <= g.scores[:-1]).all())
        e, g = _by_position(e), _by_position(g)
        assert torch.equal(e["labels"], g["labels"])
        for key in ("boxes", "scores", "points"):
            assert (e[key] - g[key]).abs().max() <= 1e-4, (kind, key)
    # the default threshold applies to a file as to the checkpoint
    cut = float(expected[0].scores[len(expected[0]) // 2])
    assert len(exported(pages[0], score_threshold=cut)) == len(api(pages[0], score_threshold=cut))


def test_an_onnx_file_without_onnxruntime_is_one_line(flat_files, monkeypatch, tmp_path, capsys):
    from ocrloc.cli import main

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(ImportError) as err:
        Predictor.from_exported(flat_files["onnx"])
    assert str(err.value) == (f"{flat_files['onnx']}: running an .onnx file needs onnxruntime, which is not "
                              f"installed (pip install onnxruntime)")
    image = tmp_path / "page.png"
    Image.fromarray(_canvas()).save(image)
    assert main(["predict", "--exported", str(flat_files["onnx"]), "--images", str(image),
                 "--out", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == f"error: {err.value}\n" and not (tmp_path / "r.json").exists()


def test_polarity_auto_reads_a_light_page_inverted_and_says_so(api):
    dark = _canvas(seed=23)  # light strokes on black: the training data's look
    light = 255 - dark       # dark ink on a white page
    as_trained = api(dark, score_threshold=0)
    assert as_trained.polarity == "light_on_dark"
    found = api(light, score_threshold=0)  # polarity="auto", the default
    assert found.polarity == "dark_on_light" and "dark_on_light" in repr(found)
    _assert_same(as_trained, found)
    _assert_same(as_trained, api(Image.fromarray(light).convert("RGB"), score_threshold=0))
    told = api(light, polarity="light_on_dark", score_threshold=0)  # an explicit value is obeyed
    assert told.polarity == "light_on_dark" and not torch.equal(told.scores, found.scores)
    assert api(dark, polarity="dark_on_light", score_threshold=0).polarity == "dark_on_light"
    both = api([light, dark], score_threshold=0)  # each image its own
    assert [d.polarity for d in both] == ["dark_on_light", "light_on_dark"]


def test_the_default_threshold_is_the_documented_one_and_0_keeps_everything():
    from ocrloc.constants import DEFAULT_SCORE_THRESHOLD

    predictor = Predictor.from_module(_Fixed())  # scores 0.9 and 0.2
    image = np.zeros((100, 77), np.uint8)
    assert DEFAULT_SCORE_THRESHOLD == 0.5
    assert predictor(image).scores.tolist() == pytest.approx([0.9])
    assert predictor(image, score_threshold=0).scores.tolist() == pytest.approx([0.9, 0.2])
    assert predictor(image, score_threshold=None).scores.tolist() == pytest.approx([0.9, 0.2])
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="score_threshold must be in"):
            predictor(image, score_threshold=bad)


def test_checkpoint_metadata_has_one_reader_and_one_fallback(files, tmp_path, capsys):
    """A checkpoint without meta['train_size']: Predictor and `ocrloc export` both take the preset's size
    (they used to differ: export wrote 128 x 128 whatever the preset)."""
    from ocrloc.cli import main
    from ocrloc.engine.checkpoint import read_checkpoint_meta

    state = torch.load(files["checkpoint"], weights_only=True)
    config = load_config(None, TINY)
    from ocrloc.data.task import digits_task

    for meta, size in [({"rule": "seed37", "preset": "single"}, [32, 32]), ({"rule": "seed37"}, [128, 128]),
                       ({"preset": "nowhere"}, None)]:
        read = read_checkpoint_meta({**state, "meta": meta}, config, digits_task())
        assert read.train_size == size and read.rule == meta.get("rule", config.data.rule)
    path = tmp_path / "old.pt"
    save_checkpoint({**state, "meta": {"rule": "seed37", "preset": "single"}}, path)
    assert Predictor(path, device="cpu").train_size == [32, 32]
    for out in (tmp_path / "old.ts", tmp_path / "old.pt2"):
        argv = ["export", "--checkpoint", str(path), "--out", str(out)]
        assert main(argv + (["--format", "export"] if out.suffix == ".pt2" else [])) == 0
        assert "trained on [32, 32] images" in capsys.readouterr().out
        assert Predictor.from_exported(out).train_size == [32, 32]


def _readme_python_block(after: str) -> str:
    """The first ```python block of README.md after the text ``after``, as written there."""
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_deployment_snippet_runs_as_written_on_a_photo_of_a_page(tmp_path, monkeypatch):
    """README, "Deploying": its block, on the example it describes (a 480 x 640 photo of a page: dark ink
    on light paper, colour), inverts the page and applies the threshold, as Predictor does by default."""
    snippet = _readme_python_block("A 480 x 640 photo of a page")
    torch.manual_seed(0)
    detector = build(load_config(None, TINY)).eval()
    ink = _canvas(480, 640, seed=30)
    page = 255 - ink  # dark strokes on white paper
    last = [m for m in detector.model.heads["heatmap"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # the median peak's score moved to 0.5: the threshold keeps some detections, drops others
        scores = detector.predictor(pad_to_rule(torch.from_numpy(ink)[None, None] / 255.0, detector.predictor))
        last.bias -= torch.logit(scores[0]["scores"].median().double()).float()
    run = tmp_path / "runs" / "quickstart"
    export_torchscript(detector.predictor, "all10", [128, 128], run / "model.pt")
    Image.fromarray(np.stack([page] * 3, axis=-1)).save(tmp_path / "page.png")
    monkeypatch.chdir(tmp_path)
    namespace: Dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 (the README's own text)
    got = namespace["detections"]

    model = torch.jit.load(str(run / "model.pt"))
    with torch.no_grad():
        every = model(torch.from_numpy(ink)[None, None])[0]  # the page as the model was trained to see it
        as_given = model(torch.from_numpy(page)[None, None])[0]
    keep = every["scores"] >= 0.5
    assert 0 < int(keep.sum()) < len(keep)  # the threshold has something to keep and something to drop
    assert set(got) == {"boxes", "scores", "labels", "keypoints"}
    for name, value in every.items():
        assert torch.equal(got[name], value[keep]), name
    assert not (len(as_given["scores"]) == len(every["scores"]) and torch.equal(as_given["scores"], every["scores"]))
    # The same detections from ocrloc's own predictor, with its defaults, which reports the inversion.
    detections = Predictor.from_exported(run / "model.pt")(tmp_path / "page.png")
    assert detections.polarity == "dark_on_light"
    assert torch.allclose(detections.scores, got["scores"]) and torch.equal(detections.labels, got["labels"])
