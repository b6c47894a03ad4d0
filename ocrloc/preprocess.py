"""The one input path: any image -> the grey, padded canvas a predictor takes.

Every way into a model goes through here: :class:`ocrloc.Predictor` (files, PIL images, numpy arrays,
tensors: :func:`to_grey`, then :func:`apply_polarity`), the predict loop of training, validation and
``ocrloc predict`` (:func:`pad_to_rule`, in :mod:`ocrloc.engine.inference`), and every exported file
(:class:`CanvasPreprocess`, scripted or traced into it by :mod:`ocrloc.export`). What they share is
written once here: the grey conversion (:data:`LUMA_WEIGHTS`), the float range (:data:`FLOAT_TOLERANCE`),
the padding to the input rule (:func:`padded_side`), its words (:func:`input_rule_text`,
:func:`too_large_text`), and the polarity (:data:`POLARITIES`, :func:`is_light_page`). The models see
what they were trained on: one grey channel in [0, 1], light ink on a dark background, padded with
zeros on the bottom and right (so a pixel keeps its coordinates); ``docs/task.md``, "The exported model".

numpy, torch and (for files and PIL images, imported on use) PIL only: nothing of the training stack.
"""

# No `from __future__ import annotations` here: TorchScript reads CanvasPreprocess's class attribute annotations
# and the annotations of the functions its forward calls.
import os
import warnings
from pathlib import Path
from typing import Any, Callable, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocrloc.constants import FLOAT_TOLERANCE

__all__ = ["FLOAT_TOLERANCE", "LIGHT_PAGE_MEDIAN", "LUMA_WEIGHTS", "POLARITIES", "CanvasPreprocess",
           "apply_polarity", "array_to_grey", "check_pixels", "checked_image", "input_rule_text", "is_light_page",
           "pad_to_multiple", "pad_to_rule", "padded_side", "pil_to_array", "read_image", "to_grey",
           "too_large_text"]

# ITU-R 601 luma, as PIL's "L" mode: colour -> grey everywhere (uint8 colour files and arrays go through PIL's
# own integer conversion, which rounds these weights; floats and the exported graphs weigh them directly).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

#: ``auto``: each image's own, by :func:`is_light_page` (the default of ``ocrloc.Predictor`` and
#: ``ocrloc predict``). ``light_on_dark``: the training data's look (MNIST: white digits on black),
#: taken as is. ``dark_on_light``: black ink on white paper, inverted (``1 - x``) first.
POLARITIES = ("auto", "light_on_dark", "dark_on_light")

# A page is light (dark ink on paper) when its median grey value is above this. Measured: the median of
# every one of 500 val canvases of canvas128 (also with canvas augmentation) and of single is 0.0 (ink
# covers at most 6% and 24% of their pixels, the background is black), so their inversions have a median
# of 1.0; a page of text is mostly paper whichever way it is printed. Half-way between the two.
LIGHT_PAGE_MEDIAN = 0.5


# -- the input rule ---------------------------------------------------------------------------------


def padded_side(size: int, size_divisible: int, min_size: int) -> int:
    """``size`` rounded up to a multiple of ``size_divisible``, and to at least ``min_size`` rounded up
    the same way: the side a predictor with that input rule is given (padding bottom and right)."""
    cells = max((size + size_divisible - 1) // size_divisible, (min_size + size_divisible - 1) // size_divisible)
    return cells * size_divisible


def input_rule_text(size_divisible: int, min_size: int, max_size: int) -> str:
    """The input rule in words, as errors and ``ocrloc.Predictor.input_rule`` give it."""
    rule = f"H and W multiples of {size_divisible}, at least {min_size}"
    if max_size > 0:
        rule += f", at most {max_size}"
    return rule


def too_large_text(height: int, width: int, padded_height: int, padded_width: int, max_size: int) -> str:
    """The words refusing an image whose padded side is past ``max_size`` (scriptable: the exported
    files say the same)."""
    return (f"images of {height} x {width} px (padded: {padded_height} x {padded_width}) are larger than this "
            f"model takes (at most {max_size} x {max_size})")


def pad_to_multiple(images: Tensor, multiple: int = 32, min_size: int = 0) -> Tensor:
    """Pad ``[B, C, H, W]`` on the bottom and right with zeros (black background) to multiples of
    ``multiple`` and at least ``min_size`` (:func:`padded_side`); coordinates are unchanged."""
    h, w = images.shape[-2:]
    pad_h, pad_w = padded_side(h, multiple, min_size) - h, padded_side(w, multiple, min_size) - w
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    return images


def pad_to_rule(images: Tensor, predictor: nn.Module) -> Tensor:
    """``images`` padded to ``predictor``'s input rule (its ``size_divisible``, ``min_size``, ``max_size``).

    Raises:
        ValueError: when the images are larger than the predictor takes (``max_size``; :func:`too_large_text`).
    """
    padded = pad_to_multiple(images, predictor.size_divisible, predictor.min_size)
    h, w = padded.shape[-2:]
    if predictor.max_size > 0 and (h > predictor.max_size or w > predictor.max_size):
        raise ValueError(too_large_text(images.shape[-2], images.shape[-1], h, w, predictor.max_size))
    return padded


# -- polarity ---------------------------------------------------------------------------------------


def is_light_page(image: Tensor) -> bool:
    """Whether the grey ``[H, W]`` image in [0, 1] is dark ink on a light page: its median above
    :data:`LIGHT_PAGE_MEDIAN` (more than half of it lighter than mid-grey)."""
    return bool(image.median() > LIGHT_PAGE_MEDIAN)


def apply_polarity(image: Tensor, polarity: str) -> Tuple[Tensor, str]:
    """The grey ``[H, W]`` image in [0, 1] as the models see it (light ink on dark) and the polarity it
    was read with (``auto`` resolved by :func:`is_light_page`: ``light_on_dark`` or ``dark_on_light``).

    Raises:
        ValueError: for a polarity not in :data:`POLARITIES`.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}; got {polarity!r}")
    if polarity == "auto":
        polarity = "dark_on_light" if is_light_page(image) else "light_on_dark"
    return (1.0 - image if polarity == "dark_on_light" else image), polarity


# -- any image -> grey [H, W] in [0, 1] ---------------------------------------------------------------


def check_pixels(height: int, width: int, what: str, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels, before anything the size of it is made."""
    if max_pixels and height * width > max_pixels:
        raise ValueError(f"{what}: {height} x {width} px is {height * width:,} pixels, more than max_pixels "
                         f"{max_pixels:,} (a guard against running out of memory; raise it with --max-pixels N or "
                         f"Predictor(..., max_pixels=N), 0: no limit, if the memory is there)")


def to_grey(item: Any, what: str, max_pixels: int = 0) -> List[Tensor]:
    """``item`` as grey float32 ``[H, W]`` CPU tensors in [0, 1] (several for a 4-D tensor); one
    of more than ``max_pixels`` pixels (0: no limit) is refused before it is decoded or converted."""
    if isinstance(item, (str, os.PathLike)):
        return [array_to_grey(read_image(Path(item), f"{what} ({item})", max_pixels), f"{what} ({item})")]
    if torch.is_tensor(item) and item.dim() >= 2:
        check_pixels(int(item.shape[-2]), int(item.shape[-1]), what, max_pixels)
    if isinstance(item, np.ndarray) and item.ndim >= 2:
        check_pixels(int(item.shape[0]), int(item.shape[1]), what, max_pixels)
    if torch.is_tensor(item):
        if item.is_meta:  # a shape without values: torch's own refusal comes from deep in the copy
            raise ValueError(f"{what}: a meta tensor of shape {tuple(item.shape)} holds no values; pass a tensor "
                             f"on the CPU or a GPU")
        tensor = item.detach().cpu()
        if tensor.dtype in (torch.bfloat16,):
            tensor = tensor.float()
        if tensor.dim() == 2:
            return [array_to_grey(tensor.numpy(), what)]
        if tensor.dim() == 3:
            if tensor.shape[0] not in (1, 3, 4):
                raise ValueError(f"{what}: a tensor of shape {tuple(tensor.shape)}; a 3-D tensor is [C, H, W] with "
                                 f"C = 1, 3 or 4 (a stack of grey images is [B, 1, H, W])")
            return [array_to_grey(tensor.permute(1, 2, 0).numpy(), what)]
        if tensor.dim() == 4:
            if tensor.shape[1] not in (1, 3, 4):
                raise ValueError(f"{what}: a tensor of shape {tuple(tensor.shape)}; a 4-D tensor is [B, C, H, W] "
                                 f"with C = 1, 3 or 4")
            return [array_to_grey(image.permute(1, 2, 0).numpy(), f"{what}[{k}]") for k, image in enumerate(tensor)]
        raise ValueError(f"{what}: a {tensor.dim()}-D tensor of shape {tuple(tensor.shape)}; expected [H, W], "
                         f"[C, H, W] or [B, C, H, W]")
    if isinstance(item, np.ndarray):
        return [array_to_grey(item, what)]
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is a dependency
        Image = None
    if Image is not None and isinstance(item, Image.Image):
        check_pixels(item.height, item.width, what, max_pixels)
        return [array_to_grey(pil_to_array(item), what)]
    raise TypeError(f"{what}: cannot read a {type(item).__name__}; expected a path, a PIL image, a numpy array "
                    f"or a torch tensor")


def _pil_open(path: Path, max_pixels: int) -> "Image.Image":  # noqa: F821
    """``PIL.Image.open(path)``: the header read, no pixel decoded yet."""
    from PIL import Image

    with warnings.catch_warnings():
        if max_pixels:  # ocrloc's limit governs: PIL's multi-line warning above its own would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def read_image(path: Path, what: str = "input", max_pixels: int = 0) -> np.ndarray:
    """An image file as a numpy array; its size is checked against ``max_pixels`` from the header
    (``Image.open`` decodes nothing), before the pixels are read."""
    from PIL import ImageOps

    return checked_image(path, what, max_pixels, lambda image: pil_to_array(ImageOps.exif_transpose(image)))


def checked_image(path: Path, what: str, max_pixels: int, read: Callable[["Image.Image"], Any]) -> Any:  # noqa: F821
    """``read(image)`` of the file ``path`` opened by PIL once its header passed the checks that
    :meth:`ocrloc.Predictor.check_files` and :func:`read_image` share: the file exists, PIL knows it, and
    its size is within ``max_pixels`` (ocrloc's) and PIL's own decompression-bomb limit.

    Raises:
        FileNotFoundError: naming a path that is not a file.
        ValueError: naming the file and what is wrong with it.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with _pil_open(path, max_pixels) as image:
            check_pixels(image.height, image.width, what, max_pixels)
            return read(image)
    except UnidentifiedImageError as err:
        raise ValueError(f"cannot read image {path}: not an image file PIL knows") from err
    except Image.DecompressionBombError as err:  # above 2 x PIL.Image.MAX_IMAGE_PIXELS: PIL refuses it itself
        raise ValueError(f"{what}: {err} (PIL's limit, PIL.Image.MAX_IMAGE_PIXELS)") from None


def pil_to_array(image: "Image.Image") -> np.ndarray:  # noqa: F821
    """A PIL image as a numpy array: ``L`` as uint8, 16-bit grey as uint16, ``F`` as float32
    ([0, 1] expected), 32-bit ``I`` as int32 (0..255 expected), every other mode converted to ``L``."""
    if image.mode == "L" or image.mode.startswith("I;16") or image.mode in ("F", "I"):
        array = np.array(image)
        return array.astype(np.uint16) if image.mode.startswith("I;16") else array
    return np.array(image.convert("L"))


def array_to_grey(array: np.ndarray, what: str) -> Tensor:
    """A numpy image (``H x W`` or ``H x W x 1/3/4``) as grey float32 ``[H, W]`` in [0, 1]."""
    if array.ndim == 3:
        if array.shape[2] == 1:
            array = array[:, :, 0]
        elif array.shape[2] not in (3, 4):
            raise ValueError(f"{what}: an array of shape {array.shape}; a 3-D array is H x W x C (channels last) "
                             f"with C = 1, 3 or 4")
    elif array.ndim != 2:
        raise ValueError(f"{what}: a {array.ndim}-D array of shape {array.shape}; expected H x W or H x W x C")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what}: an empty image ({array.shape[0]} x {array.shape[1]})")
    if not array.dtype.isnative:  # big-endian 16-bit PNG/TIFF data read raw: the same values, stored the other way
        array = array.astype(array.dtype.newbyteorder("="))
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.bool_:
        array = array.astype(np.float32)
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(f"{what}: {array.dtype} values in [{low}, {high}]; integer images other than uint8/uint16 "
                             f"must hold 0..255 (pass uint8, or floats in [0, 1])")
        array = array.astype(np.uint8)
    elif kind == "f":
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError(f"{what}: the float image holds NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
            raise ValueError(f"{what}: float values in [{low:g}, {high:g}]; float images are taken as [0, 1] "
                             f"(divide 0-255 values by 255, or pass uint8)")
        array = np.clip(array, 0.0, 1.0)
    else:
        raise ValueError(f"{what}: unsupported dtype {array.dtype}; expected uint8, uint16, bool, integers "
                         f"in 0..255 or floats in [0, 1]")
    if array.ndim == 3:
        if array.dtype == np.uint8:  # exactly PIL's "L" conversion
            from PIL import Image

            array = np.array(Image.fromarray(np.ascontiguousarray(array[:, :, :3]), "RGB").convert("L"))
        else:
            array = np.ascontiguousarray(array[:, :, :3]) @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).float().div_(255.0)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


# -- inside the exported files --------------------------------------------------------------------


class CanvasPreprocess(nn.Module):
    """``[B, 1 or 3, H, W]`` uint8 or float -> ``[B, 1, H', W']`` float in [0, 1], padded to the rule.

    Args:
        size_divisible: the padded H' and W' are multiples of this.
        min_size: and at least this.
        max_size: images whose padded side exceeds this are refused (0: no limit).
        min_cells: the padded sides are at least this many multiples of ``size_divisible`` (the flat
            graphs take 2: torch.export would fix a coarsest feature level of one cell as a special size).

    In a ``torch.export`` graph the channel count is a dimension of range 1 to 3, not checked here
    (the check would fix it to the example's): 2 channels there are averaged with the first two weights.
    """

    size_divisible: int
    min_size: int
    max_size: int
    min_cells: int
    float_tolerance: float

    def __init__(self, size_divisible: int, min_size: int, max_size: int = 0, min_cells: int = 1) -> None:
        super().__init__()
        self.size_divisible = int(size_divisible)
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        # The smallest padded side in multiples: min_size rounded up, or more when asked (min_cells).
        self.min_cells = max(-(-self.min_size // self.size_divisible), int(min_cells))
        self.float_tolerance = FLOAT_TOLERANCE
        self.register_buffer("luma", torch.tensor(LUMA_WEIGHTS), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        checked = True
        if not torch.jit.is_scripting():
            # An exported graph has its channel range in its input spec (1 to 3); testing for 1 or 3
            # here would fix C to the example's.
            checked = not _exporting()
        if images.dim() != 4 or (checked and images.shape[1] not in (1, 3)):
            raise ValueError(f"expected images [B, C, H, W] with C = 1 (grey) or 3 (RGB); "
                             f"got shape {list(images.shape)}")
        if images.dtype == torch.uint8:
            canvases = images.float() / 255.0
        elif images.is_floating_point():
            canvases = images.float()
            self._check_range(canvases)
        else:
            # (No dtype name in the message: TorchScript formats a dtype as its number.)
            raise ValueError("expected uint8 images (0..255) or float images in [0, 1]; "
                             "got another integer or bool dtype")
        height, width = images.shape[2], images.shape[3]
        if height < 1 or width < 1:
            raise ValueError(f"expected images of at least 1 x 1 px; got {height} x {width}")
        # A weighted sum over the channels rather than torchvision's rgb_to_grayscale, which branches on
        # the channel count and so would fix C in an exported graph. One channel: weight 0.299 / 0.299
        # = 1 exactly, so a grey float input reaches the model unchanged (docs/task.md, "The exported model").
        weights = self.luma[: images.shape[1]]
        canvases = (canvases * (weights / weights.sum()).view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
        padded_h, padded_w = self._padded(height), self._padded(width)
        if self.max_size > 0 and (padded_h > self.max_size or padded_w > self.max_size):
            raise ValueError(too_large_text(height, width, padded_h, padded_w, self.max_size))
        # Bottom and right only: a pixel keeps its coordinates, so detections are in the input's pixels.
        return F.pad(canvases, [0, padded_w - width, 0, padded_h - height])

    def _check_range(self, canvases: torch.Tensor) -> None:
        """Refuse float values outside [0, 1] (0..255 floats, negatives) and NaN or infinity.

        The model answers them with confident nonsense (a 0..255 canvas of an image that has no
        character in [0, 1] gave 70 detections), so the file says what it takes instead. A NaN fails
        both comparisons, an empty batch passes. TorchScript and eager raise a ValueError naming the
        values; a ``torch.export`` graph cannot format numbers at run time, so it asserts with the
        fixed message (a RuntimeError); ONNX drops the assertion (the ONNX file takes the values
        as they are: check them before ``session.run``, README "Export")."""
        message = ("float images must hold finite values in [0, 1] (divide 0..255 floats by 255, or pass uint8 "
                   "images)")
        tolerance = self.float_tolerance
        inside = ((canvases >= -tolerance) & (canvases <= 1.0 + tolerance)).all()
        if torch.jit.is_scripting():
            if not bool(inside):
                raise ValueError(message + "; got " + _float_values(canvases))
        elif _exporting():
            torch._assert_async(inside, message)
        elif not bool(inside):
            raise ValueError(message + "; got " + _float_values(canvases))

    def _padded(self, size: int) -> int:
        """``size`` rounded up to a multiple of ``size_divisible``, at least ``min_cells`` multiples.

        Written as (cells) * divisible so torch.export's symbolic sizes stay multiples of 32 that
        every strided layer divides exactly (no size guards to fix H and W)."""
        cells = (size + self.size_divisible - 1) // self.size_divisible
        if self.min_cells > 1:
            if torch.jit.is_scripting():
                cells = max(cells, self.min_cells)
            else:
                cells = _symbolic_max(cells, self.min_cells)
        return cells * self.size_divisible

    def rule(self) -> List[int]:
        """``[size_divisible, min_size, max_size]``."""
        return [self.size_divisible, self.min_size, self.max_size]


def _float_values(canvases: torch.Tensor) -> str:
    """What the refused values are, in words (never called on an empty tensor: it passes)."""
    if not bool(torch.isfinite(canvases).all()):
        return "NaN or infinite values"
    return f"values from {float(canvases.min())} to {float(canvases.max())}"


@torch.jit.unused
def _symbolic_max(a: int, b: int) -> int:
    # torch.export traces H and W as symbols: Python's max would fix them to the example's size.
    return torch.sym_max(a, b)


@torch.jit.unused
def _exporting() -> bool:
    return torch.compiler.is_exporting()
