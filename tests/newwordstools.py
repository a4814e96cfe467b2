"""A small Chinese corpus for new-word tests: common words in random order, with words planted."""

import random

FILLERS = ["我们", "今天", "发现", "问题", "朋友", "学生", "老师", "城市", "工作", "北京", "上海", "生活",
           "认为", "知道", "已经", "非常", "时候", "地方", "国家", "历史", "文化", "经济", "社会", "电影"]


def write_planted_corpus(path, seed, plant, lines=900, words_per_line=6):
    """Write `lines` lines of `words_per_line` FILLERS each, ended by a punctuation mark, to `path`.

    plant(i, rng, words) may insert words into line i's list in place (rng: the corpus's random.Random).
    Returns str(path)."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        words = [rng.choice(FILLERS) for _ in range(words_per_line)]
        plant(i, rng, words)
        out.append("".join(words) + rng.choice("。，！？"))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return str(path)
