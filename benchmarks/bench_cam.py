"""CAM overlays per second on a folder of 64 images: attnviz batched vs one at a time, and the same
Grad-CAM computed with the ``grad-cam`` package (pytorch_grad_cam) on the same model and images.

    python3 benchmarks/bench_cam.py [--images 64] [--device cpu] [--repeat 5] [--base-repeat 3]

Models: toy-shapes (the built-in toy ViT; the random toy-vit if its weights are missing) and a
ViT-base-shaped random model (12 layers, 12 heads, 768 wide, 224 px in 16 px patches) saved to a
temporary folder and loaded through attnviz's normal path. Ratios compare runs of this one process,
interleaved: the median of per-round ratios, with their range.

The grad-cam package declares torchvision, whose PyPI wheels are CUDA builds that do not load on a
CPU-only torch; its Grad-CAM code does not use torchvision, so install it without dependencies
(``pip install --no-deps grad-cam ttach opencv-python-headless``) and this script gives the three
torchvision names the package imports at start-up placeholders that raise if ever called.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

from common import Ratio, interleaved

import numpy as np
import torch
from PIL import Image

from attnviz.attribution.cam import cam
from attnviz.attribution.vision import blocks, tower
from attnviz.models import load_model
from attnviz.render.overlay import overlay


def grad_cam_package():
    """pytorch_grad_cam's GradCAM and overlay, or None when the package is not installed."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or a CUDA build that fails to load on a CPU torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

        def unavailable(*_, **__):
            raise RuntimeError("torchvision is not available")

        for name, attrs in {"torchvision": {}, "torchvision.ops": {"box_iou": unavailable},
                            "torchvision.transforms": {k: unavailable for k in ("Compose", "Normalize", "ToTensor")},
                            "torchvision.transforms.functional": {"resize": unavailable}}.items():
            mod = types.ModuleType(name)
            mod.__path__ = []
            mod.__dict__.update(attrs)
            sys.modules[name] = mod
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.image import scale_cam_image, show_cam_on_image
    except ImportError:
        return None
    finally:  # transformers must keep seeing no torchvision
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            if getattr(sys.modules[name], "__spec__", None) is None:
                del sys.modules[name]
    return GradCAM, show_cam_on_image, scale_cam_image


def vit_base(folder: Path):
    import transformers as tf

    torch.manual_seed(0)
    labels = {i: f"class {i}" for i in range(10)}
    tf.ViTForImageClassification(tf.ViTConfig(id2label=labels, label2id={v: k for k, v in labels.items()})).save_pretrained(folder)
    tf.ViTImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def pictures(n: int, side: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        a = rng.integers(0, 90, size=(side, side, 3), dtype=np.uint8)
        y, x = rng.integers(0, side // 2, size=2)
        a[y:y + side // 3, x:x + side // 3] = rng.integers(140, 256, size=3)
        out.append(Image.fromarray(a))
    return out


def attnviz_run(loaded, images, batch: int) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = cam(loaded, images, method="gradcam", batch_size=batch)
    for i, im in enumerate(images):
        overlay(im, result.maps[i].numpy(), result.boxes[i])
    return time.perf_counter() - start, result.maps


class Logits(torch.nn.Module):
    """model(pixel_values=x).logits as model(x), which pytorch_grad_cam expects."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


def package_run(pkg, loaded, images, batch: int, prefix: int) -> tuple[float, np.ndarray]:
    """The same Grad-CAM: the layer whose output enters the last block, tokens reshaped to the grid."""
    grad_cam, show, _ = pkg
    vision = tower(loaded)
    layer = blocks(vision)[-2]

    def reshape(t):  # (B, S, D) -> (B, D, gh, gw), as the package's ViT tutorial does
        t = t[0] if isinstance(t, tuple) else t
        side = int((t.shape[1] - prefix) ** 0.5)
        return t[:, prefix:].reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    start = time.perf_counter()
    maps = []
    with grad_cam(model=Logits(loaded.model), target_layers=[layer], reshape_transform=reshape) as gc:
        for i in range(0, len(images), batch):
            chunk = images[i:i + batch]
            pixels = loaded.encode(chunk).batch["pixel_values"]
            cams = gc(input_tensor=pixels, targets=None)  # (b, H, W) in [0, 1], resized to the input
            for im, m in zip(chunk, cams):
                rgb = np.asarray(im.resize((m.shape[1], m.shape[0])), dtype=np.float32) / 255.0
                show(rgb, m, use_rgb=True)
                maps.append(m)
    return time.perf_counter() - start, np.stack(maps)


def agreement(ours: torch.Tensor, theirs: np.ndarray, pkg) -> float:
    """Largest difference between the package's maps and ours put through the package's own resize
    and its second min-max scaling (after merging target layers)."""
    scale = pkg[2]
    resized = scale(scale(ours.numpy(), (theirs.shape[2], theirs.shape[1])))  # (B, H, W)
    return float(np.abs(resized - theirs).max())


def bench(name: str, loaded, images, batch: int, pkg, repeats: int, single: int) -> None:
    """Batched, one by one and the package, interleaved ``repeats`` rounds; ratios per round."""
    attnviz_run(loaded, images[:2], batch)  # warm-up
    few, n = images[:single], len(images)
    cases = {"batched": lambda: attnviz_run(loaded, images, batch)[1], "single": lambda: attnviz_run(loaded, few, 1)}
    if pkg is not None:
        prefix = cam(loaded, images[:1], method="raw").prefix
        package_run(pkg, loaded, images[:2], batch, prefix)  # warm-up
        cases["package"] = lambda: package_run(pkg, loaded, images, batch, prefix)[1]
    times, out = interleaved(cases, repeats, device=loaded.device)
    per_image = {k: [t / (len(few) if k == "single" else n) for t in v] for k, v in times.items()}
    rate = {k: 1 / statistics.median(v) for k, v in per_image.items()}
    print(f"\n{name}: {n} images, batch {batch}, device {loaded.device}, {repeats} interleaved rounds")
    print(f"  attnviz gradcam + overlay, batched     {rate['batched']:8.2f} overlays/s")
    print(f"  attnviz gradcam + overlay, one by one  {rate['single']:8.2f} overlays/s ({len(few)} images)"
          f"   batch speed-up {Ratio.of(per_image['single'], per_image['batched'])}")
    if pkg is None:
        print("  grad-cam package not installed: no comparison")
        return
    print(f"  grad-cam package GradCAM + overlay     {rate['package']:8.2f} overlays/s   "
          f"attnviz speed / package {Ratio.of(per_image['package'], per_image['batched'])}")
    print(f"  same maps: largest difference from the package's {agreement(out['batched'], out['package'], pkg):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds on the toy")
    parser.add_argument("--base-repeat", type=int, default=3, help="interleaved rounds on the ViT-base-shaped model")
    args = parser.parse_args()
    import transformers  # noqa: F401  (before the grad-cam import, which may stand in for torchvision)

    pkg = grad_cam_package()
    try:
        toy = load_model("toy-shapes", device=args.device)
    except Exception as err:  # weights not built yet
        print(f"toy-shapes unavailable ({type(err).__name__}); using the random toy-vit")
        toy = load_model("toy-vit", device=args.device)
    bench(toy.name, toy, pictures(args.images, 32), 64, pkg, repeats=args.repeat, single=args.images)
    with tempfile.TemporaryDirectory() as tmp:
        base = load_model(str(vit_base(Path(tmp) / "vit-base")), device=args.device)
        bench("ViT-base-shaped (random)", base, pictures(args.images, 224), 16, pkg, repeats=args.base_repeat, single=16)


if __name__ == "__main__":
    main()
