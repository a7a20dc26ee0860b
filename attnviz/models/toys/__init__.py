"""attnviz's own small Transformers: the model (toy, config), its character tokenizer (chars), image
preprocessing (vision), the built-in zoo, training recipes and loop (recipes, train), weights files
(store), the synthetic tasks with ground truth (data/) and their export to files (export)."""
