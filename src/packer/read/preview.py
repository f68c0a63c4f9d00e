"""``pack inspect --preview grid.png``: a contact sheet, one row of thumbnails per class.

The first ``per_class`` samples of each class in pack order, so the same pack always gives the same
PNG. Encoded images are decoded with Pillow (EXIF rotation applied, as a viewer shows them); pixel
packs are shown from their arrays. A sample that is not an image gets a grey cell with a cross.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from packer.errors import UsageError
from packer.images.checks import DEFAULT_MAX_PIXELS
from packer.images.opening import open_image
from packer.images.transforms import to_8bit
from packer.read.extract import select
from packer.read.open import open_pack
from packer.read.pack import Pack

BACKGROUND = (255, 255, 255)
EMPTY = (200, 200, 200)
PAD = 4
LABEL_CHARS = 24


def contact_sheet(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    per_class: int = 8,
    classes: Iterable[str] | None = None,
    thumb: int = 96,
) -> dict[str, int]:
    """Write the sheet to ``out`` (PNG, written atomically); return its rows, columns and size."""
    if per_class < 1 or thumb < 8:
        raise UsageError("--per-class must be at least 1 and the thumbnail size at least 8")
    with open_pack(path) as pack:
        chosen = select(pack, classes, None)
        labels = pack.labels[chosen]
        rows: list[tuple[str, list[int]]] = []
        for label in sorted(set(labels.tolist())):
            picks = chosen[labels == label][:per_class].tolist()
            rows.append((pack.classes[label], picks))
        font = ImageFont.load_default()
        names = [_label(name) for name, _ in rows]
        label_width = max(int(font.getlength(n)) for n in names) + 2 * PAD if names else 0
        cell = thumb + PAD
        sheet = Image.new(
            "RGB", (label_width + per_class * cell + PAD, len(rows) * cell + PAD), BACKGROUND
        )
        draw = ImageDraw.Draw(sheet)
        decoded = 0
        for r, ((_, picks), name) in enumerate(zip(rows, names, strict=True)):
            y = PAD + r * cell
            draw.text((PAD, y + thumb // 2), name, fill=(0, 0, 0), font=font, anchor="lm")
            for c, i in enumerate(picks):
                x = label_width + PAD + c * cell
                image = _thumbnail(pack, i, thumb)
                if image is None:
                    draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=EMPTY)
                    draw.line((x, y, x + thumb - 1, y + thumb - 1), fill=(120, 120, 120))
                    draw.line((x, y + thumb - 1, x + thumb - 1, y), fill=(120, 120, 120))
                    continue
                decoded += 1
                sheet.paste(
                    image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2)
                )
        if rows and not decoded:
            raise UsageError(
                f"{pack.path}: none of the samples shown is an image (extensions: "
                f"{', '.join(pack.manifest.extensions)}); --preview needs images"
            )
        target = Path(out)
        buffer = io.BytesIO()
        sheet.save(buffer, "PNG", optimize=False)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(buffer.getvalue())
        partial.replace(target)
        return {
            "rows": len(rows),
            "columns": per_class,
            "width": sheet.width,
            "height": sheet.height,
        }


def _label(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def _thumbnail(pack: Pack, i: int, size: int) -> Image.Image | None:
    """Sample ``i`` fitted into ``size`` x ``size`` (aspect kept), RGB; None if not an image."""
    try:
        if pack.shape is not None:
            array = pack.array(i)
            image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        else:
            limit = pack.manifest.created_by.get("max_pixels")
            limit = limit if isinstance(limit, int) else DEFAULT_MAX_PIXELS
            image = ImageOps.exif_transpose(open_image(pack.read(i), limit))
        image = _to_rgb(image)
        image.thumbnail((size, size), Image.Resampling.BILINEAR)
        return image
    except (
        OSError,
        ValueError,  # UnscalableImageError and PixelLimitError too
        SyntaxError,
        Image.DecompressionBombError,  # over the caller's own Pillow limit
    ):
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for any mode: 16-bit and float images scaled to 8 bits, alpha over white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(flat, rgba).convert("RGB")
    return image.convert("RGB")
