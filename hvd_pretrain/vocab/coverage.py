"""How well a vocab covers text it was not trained on: unknown-token rate and tokens per word.

Blank lines (see `hvd_pretrain.textio.is_blank`) are neither trained on nor held out.
The lines are those of `hvd_pretrain.inputs` (one sentence per line, whatever the input
format: compressed text, JSON Lines, Parquet, raw documents split into sentences).
"""

from hvd_pretrain.inputs import corpus_lines, inspect_inputs
from hvd_pretrain.textio import is_blank


def _lines(files, reading):
    """Non-blank canonical lines (bytes) of every file, in order."""
    return (line for line in corpus_lines(inspect_inputs(files, reading), reading) if not is_blank(line))


def coverage_report(tokenizer, sentences):
    """Unknown-token rate and tokens per (whitespace-separated) word over `sentences`."""
    sentences = [s for s in sentences if not is_blank(s)]
    words = sum(len(s.split()) for s in sentences)
    tokens = unknown = 0
    for ids in tokenizer.encode_batch(sentences):
        tokens += len(ids)
        unknown += sum(1 for i in ids if i == tokenizer.unk_id)
    return {
        "sentences": len(sentences),
        "words": words,
        "tokens": tokens,
        "unknown_tokens": unknown,
        "unknown_rate": unknown / tokens if tokens else 0.0,
        "tokens_per_word": tokens / words if words else 0.0,
    }


def held_out_lines(files, every, limit, reading=None):
    """Every `every`-th non-blank line of the input (at most `limit`), decoded; invalid UTF-8 is skipped.

    reading: the InputConfig of the files (default: detect the format, one sentence per line)."""
    picked = []
    numbered = _lines(files, reading)
    for index, raw in enumerate(numbered):
        if index % every == every - 1:
            try:
                picked.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                continue
            if len(picked) >= limit:
                break
    return picked


def training_lines(files, every, max_line_bytes=1 << 16, reading=None):
    """The non-blank lines that `held_out_lines` does not pick: the vocab trains on these only."""
    numbered = _lines(files, reading)
    for index, raw in enumerate(numbered):
        if every and index % every == every - 1:
            continue
        if len(raw) > max_line_bytes:
            continue
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
