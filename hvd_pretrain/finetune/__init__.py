"""Downstream probes: fine-tune a pre-trained encoder on a sentence (pair) classification task.

    tasks.py    GLUE / CLUE task files (TSV with a header, JSON lines) -> examples and labels
    config.py   FinetuneConfig: the recipe (hvd-finetune's flags)
    encode.py   examples -> [CLS] a [SEP] b [SEP] features with a checkpoint's tokenizer
    sources.py  a run, a checkpoint, a Google TF1 or a transformers directory -> encoder weights + vocab
    probe.py    fine-tune over seeds; accuracy and F1 as mean +- std
"""
