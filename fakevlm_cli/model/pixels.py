"""The processor's image side: one RGB image to the model's pixel values, bit for bit as the processor makes
them but without its per-pixel float arithmetic where that is proven identical (`FastPixels`). Needs no
weights; thread-safe (loader threads and Ray CPU tasks run it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakevlm_cli.model.localise import View

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


class Pixels:
    """The processor's image side: one RGB image to the model's pixel values. Needs no weights, so a Ray CPU
    task preprocesses with it while the replicas hold the model (`Engine.load_pixels`); thread-safe."""

    def __init__(self, processor):
        self.processor = processor
        self.view = view_of(processor.image_processor)
        self.fast: FastPixels | None = FastPixels.checked(self)

    @property
    def input_short_edge(self) -> int | None:
        """The short side the processor resizes images to (336 for LLaVA-1.5)."""
        return self.view.shortest_edge

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize, crop and normalise one RGB image to the processor's pixel values, bit for bit.

        Pillow resizes to exactly the size the processor would (same shortest edge, same rounding, same
        filter); then the centre crop is an array slice, and rescale + normalise is a lookup table holding the
        processor's own output for each of the 256 values of each channel (`FastPixels`). The processor's
        array conversions at full size and its float arithmetic over every pixel are skipped; `__init__`
        checks the result equals the processor's, and falls back to the processor where it would not.
        """
        if self.fast is not None:
            return self.fast(image)
        image = self.resize_like_processor(image)
        out = self.processor.image_processor(images=[image], return_tensors="pt")
        return out["pixel_values"][0]

    def resize_like_processor(self, image: Image.Image) -> Image.Image:
        target = self.view.resized(*image.size)
        if target == image.size:
            return image
        return image.resize(target, resample=int(getattr(self.processor.image_processor, "resample", 3)))


def view_of(ip) -> View:
    """The image processor's geometry, read once: the short side it resizes to and its centre crop (None for
    a step it does not take)."""
    def get(obj, key):
        value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
        return int(value) if value else None

    size, crop = getattr(ip, "size", None), getattr(ip, "crop_size", None)
    resize, centre = getattr(ip, "do_resize", True), getattr(ip, "do_center_crop", True)
    return View(shortest_edge=get(size, "shortest_edge") if resize else None,
                crop_width=get(crop, "width") if centre else None, crop_height=get(crop, "height") if centre else None)


class FastPixels:
    """Pixel values as the processor computes them, without its per-pixel float arithmetic (see `preprocess`).

    Built only for a processor that resizes, centre-crops, rescales and normalises (the CLIP processor of
    LLaVA-1.5) and only when its output on probe images is bit-identical to the processor's.
    """

    def __init__(self, engine: Pixels, lut, crop: tuple[int, int]):
        self.engine, self.lut, self.crop = engine, lut, crop

    @classmethod
    def checked(cls, engine: Pixels) -> FastPixels | None:
        import numpy as np
        import torch
        from PIL import Image

        ip = engine.processor.image_processor
        height, width = engine.view.crop_height, engine.view.crop_width
        steps = ("do_resize", "do_center_crop", "do_rescale", "do_normalize")
        if not (height and width and all(getattr(ip, s, False) for s in steps)) or getattr(ip, "do_pad", False):
            return None
        try:
            ramp = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2), "RGB")
            values = ip(images=[ramp], do_resize=False, do_center_crop=False, return_tensors="np")
            lut = np.ascontiguousarray(values["pixel_values"][0][:, 0, :], dtype=np.float32)  # (3, 256)
            fast = cls(engine, lut, (int(height), int(width)))
            rng = np.random.default_rng(0)
            for size in ((523, 389), (301, 451), (int(width) + 1, int(height)), (97, 61)):
                probe = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
                theirs = ip(images=[engine.resize_like_processor(probe)], return_tensors="pt")["pixel_values"][0]
                if not torch.equal(fast(probe), theirs):
                    return None
        except Exception:  # noqa: BLE001 - any surprise in the processor: keep using it as it is
            return None
        return fast

    def __call__(self, image: Image.Image):
        import numpy as np
        import torch

        pixels = np.asarray(self.engine.resize_like_processor(image))
        crop_h, crop_w = self.crop
        top, left = (pixels.shape[0] - crop_h) // 2, (pixels.shape[1] - crop_w) // 2
        if top < 0 or left < 0:  # smaller than the crop after resizing: the processor pads; let it
            out = self.engine.processor.image_processor(images=[image], return_tensors="pt")
            return out["pixel_values"][0]
        window = pixels[top:top + crop_h, left:left + crop_w]
        out = np.empty((3, crop_h, crop_w), dtype=np.float32)
        for channel in range(3):  # one table lookup per value, in NumPy (no torch threads to share)
            np.take(self.lut[channel], window[..., channel], out=out[channel])
        return torch.from_numpy(out)

