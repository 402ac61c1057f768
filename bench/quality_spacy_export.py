"""Exports spaCy's English tokenizer rules to lib/quality/spacy-en.json, the data lib/quality/spacy-tokenizer.ts runs.

Usage: quality_spacy_export.py lib/quality/spacy-en.json && npx prettier --write lib/quality/spacy-en.json
(in the environment bench/quality.bench.ts installs: spaCy, datatrove)

datatrove splits words and sentences with spacy.blank("en") plus the sentencizer. What that tokenizer does is data:
prefix, suffix and infix regular expressions, a URL pattern and 1,347 special cases ("don't" -> "do" "n't", "U.S.",
":)"). This writes them out with the regular expressions rewritten from Python to JavaScript syntax (\\U0001F600 ->
\\u{1F600}, \\d and \\w as Unicode classes, escapes JavaScript's u flag refuses dropped), the special cases that spaCy
re-applies after affix splitting (with the token sequence they replace), and the sentencizer's punctuation.
"""

import json
import re
import sys

import spacy
from spacy.pipeline import Sentencizer
from spacy.tokenizer import Tokenizer

JS_SYNTAX = set("^$\\.*+?()[]{}|/-")


def to_js(pattern: str) -> str:
    pattern = pattern.replace("(?u)", "")
    out = []
    i = 0
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            n = pattern[i + 1]
            if n == "U":
                out.append("\\u{%x}" % int(pattern[i + 2 : i + 10], 16))
                i += 10
                continue
            if n == "u":
                out.append(pattern[i : i + 6])
                i += 6
                continue
            if n == "d":
                out.append("\\p{Nd}")
            elif n == "w":
                out.append("\\p{L}\\p{N}_" if in_class else "[\\p{L}\\p{N}_]")
            elif n in "sSnrtfv" or n in JS_SYNTAX:
                out.append(c + n)
            elif n.isalnum():
                raise ValueError(f"unhandled escape \\{n}")
            else:
                out.append(n)  # an identity escape JavaScript's u flag refuses
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def main() -> None:
    nlp = spacy.blank("en")
    t = nlp.tokenizer
    plain = Tokenizer(
        nlp.vocab,
        rules={},
        prefix_search=t.prefix_search,
        suffix_search=t.suffix_search,
        infix_finditer=t.infix_finditer,
        token_match=t.token_match,
        url_match=t.url_match,
    )
    assert t.token_match is None and t.faster_heuristics
    rules = {key: [token[65] for token in tokens] for key, tokens in t.rules.items()}  # 65: ORTH
    matched = {}
    for key in rules:
        if t.find_prefix(key) or t.find_infix(key) or t.find_suffix(key) or " " in key:
            matched[key] = [token.text for token in plain(key)]
    data = {
        "spacy": spacy.__version__,
        "prefix": to_js(t.prefix_search.__self__.pattern),
        "suffix": to_js(t.suffix_search.__self__.pattern),
        "infix": to_js(t.infix_finditer.__self__.pattern),
        "url": to_js(t.url_match.__self__.pattern),
        "rules": rules,
        "matched": matched,
        "sentenceEnds": list(Sentencizer.default_punct_chars),
    }
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False, indent=0)
        out.write("\n")


if __name__ == "__main__":
    main()
