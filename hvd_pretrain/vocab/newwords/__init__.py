"""Chinese new-word discovery for whole-word masking dictionaries.

textio (streaming input) -> ngrams (per-chunk numpy counting) -> counting (two passes over
a process pool, bounded memory) -> scoring (cohesion, branching entropy, thresholds) ->
rules (rule files, vetoes, proposals) -> segmented (filters from jieba's segmentation) ->
hybrid (the methods end to end) -> report (TSV, jieba user dictionary, report).
evaluation scores a word list against a reference segmentation: lexicon membership and
agreement with the gold word boundaries. The command line is `hvd-data newwords`
(hvd_pretrain/cli/data_newwords.py).
"""
