"""Writes sample_inputs/gpt2-zh/: a tiny GPT-2 with a byte-level BPE tokenizer, for showing Chinese tokens.

GPT-2, Qwen and Llama 3 read text as bytes: a Chinese character is three UTF-8 bytes, and unless their BPE
merged those bytes into one token, the character is split over two or three tokens. This folder has that
kind of tokenizer, small enough to ship in the clone (under 200 KB):

* the tokenizer is GPT-2's kind (ByteLevel pre-tokenizer and decoder, BPE, one special token
  ``<|endoftext|>``, no pad token), its merges trained here on the few English and Chinese sentences below.
  The Chinese ones are rarer, so every character of "我喜欢这部电影" stays split over 2 or 3 byte tokens;
* the model is transformers' own GPT2LMHeadModel (2 layers, 4 heads, 32 wide), seeded and then trained
  for a few hundred steps (seconds on a CPU) to predict the next token of those same sentences. It has
  learnt them, not a language: its attention has some structure, and its predictions mean nothing.

The run is deterministic: the same versions of torch, transformers and tokenizers write the same bytes.

    python scripts/make_sample_model.py [--out sample_inputs/gpt2-zh] [--steps 300]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sample_inputs" / "gpt2-zh"
ENGLISH = [
    "The movie was not good, but the music was wonderful.", "The movie was wonderful, and the music was not bad.",
    "Paris is the capital of France.", "The capital of Italy is Rome.", "I liked this movie very much.",
    "We went to Paris and Rome.", "She reads a book every evening.",
]
CHINESE = ["我喜欢这部电影", "这部电影很好看", "我们在北京", "他喜欢音乐", "今天天气很好", "我不喜欢这本书"]
EOS = "<|endoftext|>"
VOCAB = 359  # with these sentences: English words whole, each character of 我喜欢这部电影 over 2-3 byte tokens
SPLIT_CHECK = "我喜欢这部电影"


def tokenizer():
    """GPT-2's kind of tokenizer, its BPE merges trained on ENGLISH (six times each) and CHINESE (once)."""
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(ENGLISH * 6 + CHINESE, trainer)
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                     model_max_length=64)
    spans = core.encode(SPLIT_CHECK).offsets  # per token, the characters it covers
    counts = [sum(1 for span in spans if span == (i, i + 1)) for i in range(len(SPLIT_CHECK))]
    if len(counts) != len(SPLIT_CHECK) or sum(counts) != len(spans) or not all(2 <= n <= 3 for n in counts):
        # the point of the folder is that a character is several byte tokens
        raise SystemExit(f"make_sample_model: {SPLIT_CHECK} is {core.encode(SPLIT_CHECK).tokens}, not each "
                         "character over 2-3 tokens: this tokenizers release merges differently; change VOCAB")
    return tok


def model(vocab: int, steps: int, tok):
    """A seeded GPT-2, trained for ``steps`` full-batch steps on the sentences (each ending with EOS)."""
    import torch
    import transformers as tf

    config = tf.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                           bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    lm = tf.GPT2LMHeadModel(config)
    texts = ENGLISH + CHINESE
    rows = [tok(t)["input_ids"] + [tok.eos_token_id] for t in texts]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.eos_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = ids.masked_fill(mask == 0, -100)
    optimiser = torch.optim.AdamW(lm.parameters(), lr=3e-3, weight_decay=0.0)
    lm.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = lm(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    lm.eval()
    return lm, loss.item()


# what save_pretrained writes for these folders: a rebuild replaces them and leaves any other file alone
WRITTEN = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
           "special_tokens_map.json", "vocab.txt")


def deterministic() -> None:
    """Quiet, offline, one thread and deterministic kernels: the same sums in the same order on every run."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers as tf

    tf.utils.logging.set_verbosity_error()
    tf.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def save(folder: Path, trained, tok) -> None:
    """The model and tokenizer into ``folder``, after removing what an earlier run of these scripts wrote there."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WRITTEN:
        (folder / name).unlink(missing_ok=True)
    trained.save_pretrained(folder)
    tok.save_pretrained(folder)


def write(out: Path = OUT, steps: int = 300) -> float:
    """Write the folder; returns the last training loss."""
    deterministic()
    tok = tokenizer()
    lm, loss = model(len(tok), steps, tok)
    save(out, lm, tok)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    loss = write(args.out, args.steps)
    size = sum(p.stat().st_size for p in args.out.iterdir()) // 1024
    print(f"wrote {args.out} ({size} KB; last training loss {loss:.3f})")


if __name__ == "__main__":
    main()
