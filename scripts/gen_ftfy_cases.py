#!/usr/bin/env python3
"""Writes test/fixtures/tokenizer/ftfy_extra_cases.json: seeded mojibake, entity and width strings with
ftfy 6.3.1's fix_text output (Python 3.11, unicodedata 14.0.0). Needs ftfy 6.3.1 importable.
Usage: python3 scripts/gen_ftfy_cases.py > test/fixtures/tokenizer/ftfy_extra_cases.json
"""
import json
import random

import ftfy

assert ftfy.__version__ == "6.3.1", ftfy.__version__

rng = random.Random(1)
pool = ("été naïve café Straße “quoted” – — … € ™ ½ ñ ü 中文 日本語 ёж Ωμέγα ✔ 👍 😀 ǅ ﬁ ＡＢ ｶﾀ "
        "&amp; &lt; &EACUTE; &#x2019; &#128512; &#0; &#x80; A\xa0B \x85 \x9c \x81 ∂ √ ± Â Ã ° · ¬ <b> x\r\ny").split(" ")
encodings = ["latin-1", "cp1252", "cp1251", "cp1250", "cp1253", "cp1254", "cp1257", "iso-8859-2", "macroman", "cp437"]
cases = []
while len(cases) < 400:
    s = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
    if rng.random() < 0.6:
        s = s.encode("utf-8").decode(rng.choice(encodings), errors="replace" if rng.random() < 0.5 else "ignore")
        if rng.random() < 0.3:
            s = s.replace("\xa0", " ")
        if rng.random() < 0.2:
            s = s + " " + rng.choice(pool)
    cases.append({"text": s, "fixed": ftfy.fix_text(s)})
json.dump({"generator": "scripts/gen_ftfy_cases.py", "ftfy_version": ftfy.__version__, "cases": cases},
          __import__("sys").stdout, ensure_ascii=True, indent=0)
