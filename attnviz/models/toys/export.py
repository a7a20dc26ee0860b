"""Writing a toy's synthetic examples to disk: JSONL for text; for shapes, a labelled image folder.

The image layout is the one ``attnviz bench faithfulness --images`` reads: ``OUT/<class>/<n>.png`` with its
ground-truth mask beside it as ``<n>.mask.png``, plus ``labels.json`` (a row per image).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from attnviz.io import inside, make_folder, write_atomic


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_examples(name: str, examples: list[dict], out: Path) -> list[Path]:
    """Files for ``examples`` under ``out`` (created if missing); returns the paths written."""
    out = make_folder(out)
    if "image" not in examples[0]:
        lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
        return [write_atomic(inside(out, f"{name}.jsonl"), lines.encode("utf-8"))]
    written, labels = [], []
    for label in sorted({e["label_name"] for e in examples}):
        make_folder(inside(out, label))
    for i, e in enumerate(examples):
        image, mask = f"{e['label_name']}/{i:05d}.png", f"{e['label_name']}/{i:05d}.mask.png"
        written.append(write_atomic(inside(out, image), _png(e["image"])))
        written.append(write_atomic(inside(out, mask), _png(e["mask"].astype(np.uint8) * 255)))
        row = {"image": image, "mask": mask, "label": e["label"], "label_name": e["label_name"], "box": e["box"],
               "patch_mask": np.round(e["patch_mask"], 4).tolist()}
        if "labels" in e:  # a multi-label task: every class present; the folder and the mask are the first shape's
            row.update(labels=e["labels"], label_names=e["label_names"])
        labels.append(row)
    text = "[\n" + ",\n".join(json.dumps(row, ensure_ascii=False) for row in labels) + "\n]\n"  # a row per image
    written.append(write_atomic(inside(out, "labels.json"), text.encode("utf-8")))
    return written
