#!/usr/bin/env python3
"""Reference token-to-unit memberships for `distill_objectives::unit_membership` (MTA units).

Writes `crates/distill-objectives/tests/fixtures/units_reference.json`, which the Rust test
`tests/distill_objectives/units.rs` compares against. Needs the Python `tokenizers` package and
the SmolLM2 tokenizer of the shared models folder:

    MRL_SHARED=../shared python3 crates/distill-objectives/scripts/make_units_reference.py

(`MRL_SHARED` defaults to `shared/` beside the repository root.)

Each case renders an instruction with the project's prompt template (`PROMPT_TEMPLATE` of
`crates/mrl-eval/src/instruct.rs`), appends the response directly, tokenizes the full text
without special tokens with the REAL SmolLM2 tokenizer (character offsets: Python `str`
indexes code points, which is what the Rust side uses), appends an EOS token at
`(len(text), len(text))`, and truncates to `max_length` tokens. A token is *eligible* when it
starts at or after the end of the prompt and is not the EOS.

Membership rule, implemented here from its statement (not from the Rust code): with
P = len(prompt), token j with offsets [s_j, e_j) belongs to unit [s, e) (response offsets) iff

    eligible_j and s_j + 1 >= s + P and e_j <= e + P

Units without a member are dropped; `kept` lists the indices of the others in the input list.

The texts are written for the hard cases: curly quotes, "•", numbers (SmolLM2 splits digits),
emoji and other non-BMP characters (one character, several byte-level tokens), combining
marks, CJK, a unit cut by truncation, units that start or end inside a token (straddling
tokens are not members), overlapping units (a token in two units), a unit at the very start
of the response (the prompt's last token would match it but is not eligible) and one at the
very end (the EOS would match it but is not eligible).
"""

import glob
import json
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "units_reference.json")

# crates/mrl-eval/src/instruct.rs, PROMPT_TEMPLATE.
PROMPT_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"


def render_prompt(instruction):
    before, after = PROMPT_TEMPLATE.split("{instruction}")
    return before + instruction + after


def find(text, sub, occurrence=0, whole=True):
    """Character span [s, e) of the `occurrence`-th occurrence of `sub` in `text`; with
    `whole`, only occurrences not preceded or followed by an alphanumeric character count."""
    found = -1
    start = -1
    while found < occurrence:
        start = text.index(sub, start + 1)
        end = start + len(sub)
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        if not whole or not (before.isalnum() or after.isalnum()):
            found += 1
    return [start, start + len(sub)]


def inside(sub, occurrence=0):
    """A unit that starts or ends inside a word (a raw substring match)."""
    return (sub, occurrence, False)


def spans(text, items):
    """Spans of the listed items, sorted by start: a whole-word substring, (substring,
    occurrence) or `inside(...)`."""
    out = []
    for item in items:
        if isinstance(item, str):
            item = (item,)
        out.append(find(text, *item))
    return sorted(out, key=lambda s: s[0])


def membership(offsets, eligible, prompt_chars, units):
    members, kept = [], []
    for index, (s, e) in enumerate(units):
        m = [
            j
            for j, ((sj, ej), ok) in enumerate(zip(offsets, eligible))
            if ok and sj + 1 >= s + prompt_chars and ej <= e + prompt_chars
        ]
        if m:
            members.append(m)
            kept.append(index)
    return {"units": members, "kept": kept}


def make_case(tok, eos_id, name, instruction, response, words, phrases, max_length=512):
    prompt = render_prompt(instruction)
    text = prompt + response
    enc = tok.encode(text, add_special_tokens=False)
    ids = list(enc.ids) + [eos_id]
    offsets = [list(o) for o in enc.offsets] + [[len(text), len(text)]]
    eligible = [o[0] >= len(prompt) for o in enc.offsets] + [False]
    ids, offsets, eligible = ids[:max_length], offsets[:max_length], eligible[:max_length]
    units = {"words": spans(response, words), "phrases": spans(response, phrases)}
    for g, us in units.items():
        for s, e in us:
            assert 0 <= s < e <= len(response), (name, g, s, e)
    return {
        "name": name,
        "instruction": instruction,
        "prompt": prompt,
        "response": response,
        "prompt_chars": len(prompt),
        "response_chars": len(response),
        "max_length": max_length,
        "token_ids": ids,
        "token_text": [text[s:e] for s, e in offsets],
        "token_offsets": offsets,
        "eligible": eligible,
        "units": units,
        "expected": {
            g: membership(offsets, eligible, len(prompt), us) for g, us in units.items()
        },
    }


def cases(tok, eos_id):
    out = []

    hard = "• The “best” model scored 3.5/5 — don’t trust 🦀 or 🚀 naïve café reviews."
    out.append(
        make_case(
            tok,
            eos_id,
            "quotes_bullets_numbers_emoji",
            "Summarise the review in one line.",
            hard,
            [
                "The", "best", "model", "scored", "3.5", ("5", 1), "don’t", "trust", "🦀",
                "🚀", "naïve", "café", "reviews",
            ],
            [
                # starts at 0: the prompt's final "\n" token matches the rule, not eligible
                "• The",
                "The “best” model",
                # overlaps the previous one: " model" is in both
                "model scored",
                "scored 3.5/5",
                # starts inside the token " model": only " scored" is a member
                inside("odel scored"),
                "don’t trust",
                # ends inside "ïve": " na" is a member, "ïve" straddles the end
                inside("naï"),
                # ends at the end of the response: the EOS matches the rule, not eligible
                "café reviews.",
            ],
        )
    )

    facts = (
        "Rust’s borrow checker prevents data races. Memory safety comes without a garbage "
        "collector. Zero-cost abstractions keep programs fast."
    )
    facts_words = [
        "Rust’s", "borrow", "checker", "prevents", "data", "races", "Memory", "safety", "comes",
        "without", "a", "garbage", "collector", "Zero-cost", "abstractions", "keep", "programs",
        "fast",
    ]
    facts_phrases = [
        "Rust’s borrow checker",
        "prevents data races",
        "Memory safety comes",
        # cut by the truncation after " garbage": keeps " a" and " garbage"
        "a garbage collector",
        # past the truncation: dropped
        "Zero-cost abstractions",
        "keep programs fast",
    ]
    args = ("List three facts about Rust.", facts, facts_words, facts_phrases)
    full = make_case(tok, eos_id, "untruncated", *args)
    garbage_end = full["prompt_chars"] + find(facts, "garbage")[1]
    cut = next(j for j, (s, e) in enumerate(full["token_offsets"]) if e == garbage_end) + 1
    out.append(make_case(tok, eos_id, "truncated", *args, max_length=cut))

    mixed = "東京 has 14 million people; e\u0301te\u0301 👩\u200d💻 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 works, self-supervised pre-training too!"
    out.append(
        make_case(
            tok,
            eos_id,
            "cjk_combining_non_bmp",
            "Say something odd.",
            mixed,
            [
                "東京", "has", "14", "million", "people", "e\u0301te\u0301", "👩\u200d💻",
                "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "works", "self-supervised", "pre-training", "too",
            ],
            [
                "東京",
                "has 14 million people",
                "14 million",
                "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 works",
                "self-supervised pre-training",
                # overlaps the previous one: the tokens of "pre-training" are in both
                "pre-training too",
                # starts in the middle of "supervised"
                inside("ervised"),
            ],
        )
    )

    out.append(
        make_case(
            tok,
            eos_id,
            "one_character_into_a_token",
            "Greet me.",
            "Hi there",
            # "i" starts one character into the token "Hi": start + 1 >= s + P holds, so "Hi"
            # is a member (the +1 meant for a leading space admits it)
            [inside("i"), "there"],
            ["Hi there"],
        )
    )
    out.append(
        make_case(
            tok,
            eos_id,
            "nothing_kept",
            "Greet me.",
            "Hi there",
            # "her" and "ere" start two or more characters into " there": no member at all
            [inside("her"), inside("ere")],
            [],
        )
    )
    return out


def main():
    shared = os.environ.get("MRL_SHARED", os.path.join(ROOT, "..", "shared"))
    found = sorted(glob.glob(os.path.join(shared, "models", "SmolLM2-135M-Instruct*", "tokenizer.json")))
    if not found:
        sys.exit(f"no SmolLM2 tokenizer.json under {shared}/models (set MRL_SHARED)")
    tok = Tokenizer.from_file(found[0])
    eos_id = tok.token_to_id("<|im_end|>")
    assert eos_id == 2, eos_id
    data = {
        "generator": "crates/distill-objectives/scripts/make_units_reference.py",
        "tokenizer": os.path.relpath(found[0], shared),
        "rule": "eligible_j and start_j + 1 >= s + P and end_j <= e + P, P = prompt chars",
        "cases": cases(tok, eos_id),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}: {len(data['cases'])} cases")


if __name__ == "__main__":
    main()
