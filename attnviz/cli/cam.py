"""`attnviz cam`: class-activation overlays for vision Transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.attribution.methods import CAM_METHODS
from attnviz.attribution.methods.options import FUSIONS
from attnviz.cli import common as c

_METHODS = ", ".join(CAM_METHODS.names())
_LAYER_METHODS = ", ".join(n for n in CAM_METHODS.names() if "layer" in CAM_METHODS.get(n).options.__dataclass_fields__)


@c.loads_models()
def cam_cmd(
    images: Annotated[list[str], typer.Argument(help="image files, folders or globs (quote globs)", show_default=False)],
    model: c.Model = "toy-shapes",
    method: Annotated[str, typer.Option(help=f"one of: {_METHODS}")] = "attn-grad",
    target: Annotated[Optional[str], typer.Option(help="class name or index to explain (default: the predicted class)")] = None,
    prompt: Annotated[Optional[list[str]], typer.Option(help="text prompt(s) for a full CLIP model; repeat for several")] = None,
    layer: Annotated[int, typer.Option(help=f"layer for {_LAYER_METHODS} (negative counts from the end)")] = -1,
    fusion: Annotated[str, typer.Option(help=f"rollout head fusion: {', '.join(FUSIONS)}")] = "mean",
    discard_ratio: Annotated[float, typer.Option(help="rollout: drop this fraction of the weakest attention")] = 0.0,
    colormap: Annotated[str, typer.Option(help="matplotlib colormap of the map")] = "jet",
    alpha: Annotated[float, typer.Option(help="opacity of the map over the image, 0..1")] = 0.5,
    fmt: Annotated[Optional[str], typer.Option("--format", help="panel and contact sheet format: png, svg or pdf (default: --out's suffix, else png)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder, or for one image the panel's file (.png, .svg or .pdf)")] = Path("outputs"),
    save_map: Annotated[bool, typer.Option("--save-map", help="also write each raw patch map as .npy")] = False,
    max_pixels: Annotated[Optional[int], typer.Option(help="refuse larger images (default: Pillow's bomb limit)")] = None,
    batch_size: Annotated[int, typer.Option(help="images per forward/backward pass")] = 16,
    top_k: Annotated[int, typer.Option(help="classes shown in the panel title")] = 3,
    loader: c.Loader = c.Loader(),
):
    """Overlay where a vision Transformer looks on each image (ViT, DeiT, CLIP, toy-shapes)."""
    from attnviz.attribution.cam import cam
    from attnviz.attribution.methods import RolloutOptions
    from attnviz.errors import BadInput
    from attnviz.images import check_memory, find_images, load_image
    from attnviz.recording.plan import default_budget
    from attnviz.render.output import FORMATS
    from attnviz.render.overlay import check_colormap
    from attnviz.io import write_atomic
    from attnviz.report.cam import render_cam, write_files

    CAM_METHODS.get(method)
    RolloutOptions(fusion, discard_ratio)  # checked before the model loads, whichever method runs
    check_colormap(colormap)
    if fmt is not None and fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    if not 0.0 <= alpha <= 1.0:
        raise BadInput(f"--alpha must be in [0, 1], not {alpha}")
    if top_k < 1:
        raise BadInput(f"--top-k must be at least 1, not {top_k}")
    if max_pixels is not None and max_pixels < 1:
        raise BadInput(f"--max-pixels must be positive, not {max_pixels}")
    paths = find_images(images)
    panel_file = _panel_file(out, fmt, len(paths), save_map)
    fmt = fmt or (panel_file.suffix[1:].lower() if panel_file else "png")
    check_memory(paths, default_budget())  # from the headers: a huge image is refused before it is decoded
    pil = [load_image(p, max_pixels=max_pixels) for p in paths]  # a bad file stops the run before any output
    loaded = loader.load(model)
    result = cam(loaded, pil, method=method, target=target, layer=layer, prompts=prompt, fusion=fusion,
                 discard_ratio=discard_ratio, batch_size=batch_size, top_k=top_k)
    files = render_cam(result, pil, [str(p) for p in paths], model=loaded.name, fmt=fmt, colormap=colormap,
                       alpha=alpha, save_map=save_map)
    if panel_file is not None:  # the one image's panel, under the name asked for
        written = [write_atomic(panel_file, next(v for k, v in files.items() if k.endswith(f"-panel.{fmt}")))]
    else:
        written = write_files(files, out)
    for path in written:
        c.console.print(str(path), soft_wrap=True)


def _panel_file(out: Path, fmt: str | None, n_images: int, save_map: bool) -> Path | None:
    """--out with a figure suffix names the one file to write (as heatmap's does); None: --out is a folder."""
    from attnviz.errors import BadInput
    from attnviz.io import check_writable
    from attnviz.render.output import FORMATS

    suffix = out.suffix.lower().lstrip(".")
    if not suffix or out.is_dir():
        return None
    if suffix not in FORMATS:  # never a folder named like a file
        raise BadInput(f"cannot tell the figure format from {out}; end --out with .png, .svg or .pdf, or give a folder")
    if fmt is not None and fmt != suffix:
        raise BadInput(f"--out {out} does not match --format {fmt}")
    if n_images > 1:
        raise BadInput(f"--out {out} names one file but {n_images} images were given; give a folder")
    if save_map:
        raise BadInput("--save-map writes a second file; give --out a folder")
    check_writable(out)
    return out
