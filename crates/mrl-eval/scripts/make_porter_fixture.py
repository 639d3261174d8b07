"""Expected Porter stems for crates/mrl-eval/src/porter.rs, from NLTK.

rouge_score 0.1.2 (`rouge_scorer.RougeScorer(..., use_stemmer=True)`) builds its tokenizer with
`nltk.stem.porter.PorterStemmer()`, i.e. NLTK's default mode `NLTK_EXTENSIONS` (not the 1980
paper's `ORIGINAL_ALGORITHM`, not `MARTIN_EXTENSIONS`). This script stems with that mode.

The words are the distinct ROUGE tokens of the Dolly sample (lower-cased, every run of characters
other than [a-z0-9] is a separator; tokens of every length, although ROUGE only stems those
longer than 3 characters):

- `stems` (committed, compact): a 3000-word sample — every word whose stem differs between
  NLTK's three modes, hand-picked edge cases, then a seeded random sample of the rest;
- `all_tokens`: the count and an FNV-1a 64-bit digest of `word\\tstem\\n` over ALL distinct
  tokens, sorted by bytes, which the ignored test `porter_matches_nltk_on_every_dolly_token`
  recomputes with the Rust stemmer (it needs MRL_SHARED). When it fails it writes its own
  `word\\tstem` lines to a file; `--compare FILE` lists the words where they differ from NLTK.

Run from the repository root:
    pip install nltk rouge_score
    python3 crates/mrl-eval/scripts/make_porter_fixture.py [--data ../shared/data/dolly_2k.jsonl]
    python3 crates/mrl-eval/scripts/make_porter_fixture.py --compare /tmp/rust_stems.tsv
"""

import argparse
import json
import os
import random
import re
import sys

import nltk
from nltk.stem import porter

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "porter_nltk.json")
SAMPLE_SIZE = 3000

# Edge cases of the algorithm and of NLTK's extensions (irregular forms, short words, y runs,
# digits) that must be in the compact fixture whether or not Dolly has them.
EDGE_WORDS = [
    "a", "is", "ies", "dies", "ties", "lies", "flies", "skies", "sky", "dying", "lying", "tying",
    "news", "innings", "inning", "outings", "cannings", "howe", "proceed", "exceed", "succeed",
    "died", "spied", "feed", "agreed", "plastered", "bled", "motoring", "sing", "conflated",
    "troubled", "sized", "hopping", "tanned", "falling", "hissing", "fizzed", "failing", "filing",
    "happy", "enjoy", "spy", "fly", "try", "relational", "conditional", "rational", "valenci",
    "hesitanci", "digitizer", "conformabli", "radicalli", "differentli", "vileli", "analogousli",
    "vietnamization", "predication", "operator", "feudalism", "decisiveness", "hopefulness",
    "callousness", "formaliti", "sensitiviti", "sensibiliti", "hopefulli", "archaeologi",
    "geologi", "triplicate", "formative", "formalize", "electriciti", "electrical", "hopeful",
    "goodness", "revival", "allowance", "inference", "airliner", "gyroscopic", "adjustable",
    "defensible", "irritant", "replacement", "adjustment", "dependent", "adoption", "homologou",
    "communism", "activate", "angulariti", "homologous", "effective", "bowdlerize", "probate",
    "rate", "cease", "controll", "roll", "generously", "happiness", "running", "generalization",
    "caresses", "ponies", "caress", "cats", "yyyy", "yyyyy", "syzygy", "toy", "trouble", "oats",
    "trees", "ivy", "troubles", "private", "oaten", "orrery", "1990s", "2nd", "abc123ing",
    "mp3s", "ed", "ing", "eed", "bying", "ying", "yed", "aye", "eye", "says", "ably", "ally",
    "allied", "rallied", "fully", "dolly", "logi", "alli", "fulli", "ousli", "iti",
]

TOKEN_SEP = re.compile(r"[^a-z0-9]+")


def dolly_tokens(path):
    """The distinct tokens of every instruction and response, as rouge_score tokenizes them
    before stemming (lower-case, split on runs of non-[a-z0-9])."""
    words = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            for key in ("instruction", "response"):
                words.update(w for w in TOKEN_SEP.split(record[key].lower()) if w)
    return sorted(words)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def mapping_bytes(pairs):
    return "".join(f"{w}\t{s}\n" for w, s in pairs).encode("utf-8")


def main():
    parser = argparse.ArgumentParser()
    shared = os.environ.get("MRL_SHARED", "../shared")
    parser.add_argument("--data", default=os.path.join(shared, "data", "dolly_2k.jsonl"))
    parser.add_argument("--compare", help="a word<TAB>stem file written by the Rust test")
    args = parser.parse_args()

    nltk_mode = porter.PorterStemmer()  # what rouge_score instantiates
    assert nltk_mode.mode == porter.PorterStemmer.NLTK_EXTENSIONS
    original = porter.PorterStemmer(porter.PorterStemmer.ORIGINAL_ALGORITHM)
    martin = porter.PorterStemmer(porter.PorterStemmer.MARTIN_EXTENSIONS)

    if args.compare:
        bad = 0
        with open(args.compare, encoding="utf-8") as f:
            for line in f:
                word, stem = line.rstrip("\n").split("\t")
                want = nltk_mode.stem(word)
                if stem != want:
                    bad += 1
                    print(f"{word}: rust {stem!r}, nltk {want!r}")
        print(f"{bad} differences")
        sys.exit(1 if bad else 0)

    words = dolly_tokens(args.data)
    pairs = [(w, nltk_mode.stem(w)) for w in words]
    modes_differ = [
        w for w, s in pairs if s != original.stem(w) or s != martin.stem(w)
    ]
    chosen = list(dict.fromkeys(modes_differ + EDGE_WORDS))
    rest = [w for w in words if w not in set(chosen)]
    random.Random(0).shuffle(rest)
    chosen += rest[: SAMPLE_SIZE - len(chosen)]
    chosen.sort()

    fixture = {
        "generator": "crates/mrl-eval/scripts/make_porter_fixture.py",
        "nltk_version": nltk.__version__,
        "mode": "NLTK_EXTENSIONS (nltk.stem.porter.PorterStemmer(), as rouge_score 0.1.2 uses it)",
        "source": "distinct tokens of dolly_2k.jsonl (databricks-dolly-15k sample) plus edge cases",
        "all_tokens": {
            "count": len(pairs),
            "fnv1a64": f"{fnv1a64(mapping_bytes(pairs)):016x}",
        },
        "modes_differ": sorted(
            w for w in chosen if nltk_mode.stem(w) != original.stem(w)
            or nltk_mode.stem(w) != martin.stem(w)
        ),
        "stems": {w: nltk_mode.stem(w) for w in chosen},
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=0, sort_keys=False, ensure_ascii=True)
        f.write("\n")
    print(
        f"{len(pairs)} distinct tokens, {len(fixture['modes_differ'])} where the modes differ, "
        f"{len(chosen)} in the fixture -> {os.path.normpath(OUT)}"
    )


if __name__ == "__main__":
    main()
