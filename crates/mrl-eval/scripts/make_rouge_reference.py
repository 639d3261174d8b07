"""Reference ROUGE-L scores for crates/mrl-eval/src/rouge.rs, from Python's rouge_score.

The scorer is the one DSKD / MiniLLM use on Dolly:
    rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
`score(target, prediction)` for one reference, `score_multi(targets, prediction)` for several.

Cases: the hand-written HARD_CASES below (empty strings, punctuation only, Unicode, numbers,
repeated words, case, a very long text, identical texts, no overlap, several references,
stemming), then about 200 pairs built from Dolly responses with a fixed seed (response i vs
response i+1, truncated and word-shuffled versions, instruction vs response, several references).
The Dolly texts are from databricks-dolly-15k (CC BY-SA 3.0, attribution: Databricks).

Writes crates/mrl-eval/tests/fixtures/rouge_l.json: for every case the prediction, the
references, the expected precision / recall / fmeasure (exact doubles, as repr strings), and
for the hand-written cases the token lists rouge_score's tokenizer produces.

Run from the repository root:
    pip install rouge_score nltk
    python3 crates/mrl-eval/scripts/make_rouge_reference.py [--data ../shared/data/dolly_2k.jsonl]
"""

import argparse
import json
import os
import random
from importlib.metadata import version

import nltk
from rouge_score import rouge_scorer, tokenizers

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "rouge_l.json")

LONG_WORDS = (
    "the river runs quickly through valleys and mountains while generously happy people "
    "are studying running flies ponies agreed conditional relational 1990s 42 nations"
).split()

_LONG = random.Random(7)

HARD_CASES = [
    ("both empty", "", [""]),
    ("empty prediction", "", ["The reference has words."]),
    ("empty reference", "The prediction has words.", [""]),
    ("whitespace only", " \t\n ", ["word"]),
    ("punctuation only prediction", "...!!! ??? -- (),;:", ["Some answer."]),
    ("punctuation only both", "!!!", ["???"]),
    ("bullets and curly quotes", "• First item\n• “Second” item’s end",
     ["First item, second item’s end."]),
    ("accents are separators", "Café naïve résumé", ["cafe naive resume"]),
    ("accents both sides", "Café au lait", ["café au lait"]),
    ("cjk", "東京は日本の首都です Tokyo", ["Tokyo is the capital of Japan 東京"]),
    ("cjk only", "東京は日本の首都です", ["日本"]),
    ("kelvin sign lowercases to ascii k", "\u212aelvin scale", ["kelvin scale"]),
    ("dotted capital i", "\u0130stanbul is big", ["istanbul is big"]),
    ("german sharp s and greek", "Straße ΟΔΟΣ road", ["strasse road"]),
    ("emoji", "I love 🍕 pizza 🎉!", ["I love pizza"]),
    ("numbers", "In 1990, 3.14 and 2,000 people came; 1990s were 42% better.",
     ["In 1990 about 2000 people came, 3 14 percent in the 1990s"]),
    ("digits with letters", "mp3s 2nd 3rd 4th 100km", ["mp3 2nd third 4th 100 km"]),
    ("repeated words", "the the the the", ["the"]),
    ("repeated words both", "to be or not to be to be", ["be to be or to be not"]),
    ("case", "HELLO World, HoW are YOU", ["hello world how are you"]),
    ("identical", "A perfectly identical sentence.", ["A perfectly identical sentence."]),
    ("identical after normalisation", "Running, runs; RUN!", ["running runs run"]),
    ("no overlap", "alpha beta gamma", ["delta epsilon zeta"]),
    ("single token match", "cat", ["cat"]),
    ("order matters", "a b c d e f", ["f e d c b a"]),
    ("stemming generously", "She gave generously.", ["she was generous"]),
    ("stemming happiness", "happiness and happy", ["happy happiness"]),
    ("stemming running", "running runner runs", ["the run is running"]),
    ("stemming ies", "flies ponies dies ties skies", ["fly pony die tie sky"]),
    ("stemming short words untouched", "ies was has its", ["ie wa ha it"]),
    ("stemming nltk extensions", "dying lying spied died agreed feed",
     ["die lie spy die agree feed"]),
    ("stemming -ational -ization", "relational generalization conditional",
     ["relate general condition"]),
    ("newlines and tabs", "line one\nline two\tcolumn", ["line one line two column"]),
    ("multi: best is second", "the cat sat on the mat",
     ["a dog barked", "the cat sat on a mat", "cats"]),
    ("multi: tie keeps the first", "x y", ["x", "x y z w"]),
    ("multi: all empty", "words here", ["", "...", ""]),
    ("multi: empty prediction", "", ["a", "b"]),
    ("multi: identical among others", "exact match", ["no", "exact match", "exact"]),
    ("very long", " ".join(_LONG.choice(LONG_WORDS) for _ in range(3000)),
     [" ".join(_LONG.choice(LONG_WORDS) for _ in range(2500))]),
]


def dolly_cases(path, rng):
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    # Keep the fixture small: responses of at most 600 characters.
    short = [r for r in records if 0 < len(r["response"]) <= 600]
    cases = []

    def words(text):
        return text.split()

    for i in range(50):
        a, b = short[2 * i], short[2 * i + 1]
        cases.append((f"dolly next response {i}", a["response"], [b["response"]]))
    for i in range(50):
        r = short[100 + i]["response"]
        w = words(r)
        cut = rng.randint(0, len(w))
        cases.append((f"dolly truncated {i}", " ".join(w[:cut]), [r]))
    for i in range(50):
        r = short[150 + i]["response"]
        w = words(r)
        rng.shuffle(w)
        keep = rng.randint(1, len(w))
        cases.append((f"dolly shuffled {i}", " ".join(w[:keep]), [r]))
    for i in range(25):
        r = short[200 + i]
        cases.append((f"dolly instruction vs response {i}", r["instruction"], [r["response"]]))
    for i in range(25):
        r = short[225 + i]["response"]
        w = words(r)
        cut = rng.randint(1, len(w))
        refs = [short[300 + i]["response"], r, short[400 + i]["response"]]
        cases.append((f"dolly multi {i}", " ".join(w[cut // 2:cut]), refs))
    return cases


def main():
    parser = argparse.ArgumentParser()
    shared = os.environ.get("MRL_SHARED", "../shared")
    parser.add_argument("--data", default=os.path.join(shared, "data", "dolly_2k.jsonl"))
    args = parser.parse_args()

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=True)
    out = []
    for name, prediction, references in HARD_CASES:
        case = case_json(scorer, name, prediction, references)
        case["prediction_tokens"] = tokenizer.tokenize(prediction)
        case["reference_tokens"] = [tokenizer.tokenize(r) for r in references]
        out.append(case)
    for name, prediction, references in dolly_cases(args.data, random.Random(1234)):
        out.append(case_json(scorer, name, prediction, references))

    fixture = {
        "generator": "crates/mrl-eval/scripts/make_rouge_reference.py",
        "scorer": 'rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True); score(target, '
                  "prediction), score_multi(targets, prediction) for several references",
        "rouge_score_version": version("rouge_score"),
        "nltk_version": nltk.__version__,
        "dolly_licence": "Dolly texts: databricks-dolly-15k, CC BY-SA 3.0 (Databricks)",
        "cases": out,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(out)} cases -> {os.path.normpath(OUT)}")


def case_json(scorer, name, prediction, references):
    if len(references) == 1:
        score = scorer.score(references[0], prediction)["rougeL"]
    else:
        score = scorer.score_multi(references, prediction)["rougeL"]
    return {
        "name": name,
        "prediction": prediction,
        "references": references,
        # repr strings: Python's shortest round-trip form, which Rust's `str::parse::<f64>`
        # reads back to the same double (serde_json's default float parser may be 1 ulp off).
        "precision": repr(float(score.precision)),
        "recall": repr(float(score.recall)),
        "fmeasure": repr(float(score.fmeasure)),
    }


if __name__ == "__main__":
    main()
