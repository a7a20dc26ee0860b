"""Fonts for token labels: DejaVu Sans has no CJK glyphs, so find a CJK font when text needs one."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Families tried in order; the first one installed is used for CJK text.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans SC", "Source Han Sans SC",
    "Source Han Sans CN", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
    "Microsoft YaHei", "SimHei", "PingFang SC", "Hiragino Sans GB", "AR PL UMing CN",
)
MISSING_CJK = (
    "no CJK font found, so Chinese/Japanese/Korean characters show as boxes; "
    "install one (Debian/Ubuntu: apt install fonts-noto-cjk; others: Noto Sans CJK)"
)


def is_cjk(text: str) -> bool:
    for ch in text:
        name = unicodedata.name(ch, "")
        if name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "HANGUL")) or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef":
            return True
    return False


@lru_cache(maxsize=1)
def cjk_family() -> str | None:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((fam for fam in CJK_FAMILIES if fam in installed), None)


def families_for(tokens) -> tuple[list[str], str | None]:
    """Font families for these tokens, and a warning when CJK text has no CJK font."""
    if not any(is_cjk(t) for t in tokens):
        return ["DejaVu Sans"], None
    family = cjk_family()
    if family is None:
        return ["DejaVu Sans"], MISSING_CJK
    return [family, "DejaVu Sans"], None
