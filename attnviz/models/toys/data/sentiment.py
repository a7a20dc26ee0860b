"""toy-sentiment: short English or Chinese texts with one sentiment phrase, sometimes negated, or none.

An example: ``{"text", "label" (0 negative, 1 neutral, 2 positive), "label_name", "lang" ("en" | "zh"),
"negated", "words" (the deciding words, negator first), "deciding" (token indices of the deciding
words' characters and of the space between negator and word, counted as the toy's tokenizer counts
them: index 0 is [CLS], so character i of the text is token i + 1), "chars" (the same as
character offsets into ``text``)}``. The label is the word's polarity, flipped by the negator
("not good", "不好"); every other word is filler and never decides. A neutral text is filler only
(``words`` and ``deciding`` are empty). With two classes "positive" could be read off the absence of
a negative word, and attributions for it landed on filler; the neutral class makes the model find
the positive word.
"""

from __future__ import annotations

import numpy as np

from attnviz.models.toys.data import GENERATORS

LABELS = ("negative", "neutral", "positive")
NEUTRAL = 1 / 3  # share of filler-only texts
CLS_OFFSET = 1  # [CLS] comes before the first character
# Rarer than half: at 50% the label is polarity XOR negation, and training sits at chance for long.
NEGATED = 0.3
FILLERS = (1, 5)  # filler words per text, inclusive
WORDS = {
    "en": {
        "positive": ["good", "great", "nice", "happy", "fine", "lovely"],
        "negative": ["bad", "awful", "poor", "sad", "boring", "ugly"],
        "negator": "not",
        "filler": ["the", "movie", "was", "food", "it", "this", "is", "really", "a", "day", "very", "and",
                   "so", "book", "music", "service", "story", "today", "our", "trip", "felt", "quite"],
    },
    "zh": {
        "positive": ["好", "棒", "喜欢", "开心", "精彩", "美"],
        "negative": ["坏", "差", "讨厌", "难过", "无聊", "丑"],
        "negator": "不",
        "filler": ["这", "部", "电影", "很", "真", "食物", "今天", "音乐", "书", "的", "是", "我", "觉得",
                   "故事", "服务", "旅行", "非常", "有点"],
    },
}
SEP = {"en": " ", "zh": ""}


def vocabulary() -> list[str]:
    """Every character the task can produce, sorted (the toy tokenizer's vocabulary)."""
    chars = {" "}
    for table in WORDS.values():
        for value in table.values():
            for word in [value] if isinstance(value, str) else value:
                chars.update(word)
    return sorted(chars)


def _one(rng: np.random.Generator) -> dict:
    lang = "en" if rng.random() < 0.5 else "zh"
    table, sep = WORDS[lang], SEP[lang]
    fillers = [str(w) for w in rng.choice(table["filler"], size=int(rng.integers(FILLERS[0], FILLERS[1] + 1)))]
    if rng.random() < NEUTRAL:
        return {"text": sep.join(fillers), "label": 1, "label_name": LABELS[1], "lang": lang,
                "negated": False, "words": [], "chars": [], "deciding": []}
    polarity = int(rng.random() < 0.5)  # 0 negative word, 1 positive word
    word = str(rng.choice(table[("negative", "positive")[polarity]]))
    negated = bool(rng.random() < NEGATED)
    phrase = [table["negator"], word] if negated else [word]
    at = int(rng.integers(0, len(fillers) + 1))
    words = fillers[:at] + phrase + fillers[at:]
    start = len(sep.join(words[:at])) + (len(sep) if at else 0)
    end = start + len(sep.join(phrase))
    label = 2 * (polarity ^ int(negated))
    chars = list(range(start, end))
    return {"text": sep.join(words), "label": label, "label_name": LABELS[label], "lang": lang,
            "negated": negated, "words": phrase, "chars": chars, "deciding": [c + CLS_OFFSET for c in chars]}


@GENERATORS.register("toy-sentiment")
def generate(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_one(rng) for _ in range(n)]
