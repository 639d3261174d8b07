//! The English chunker: exact units of hand-checked sentences, and properties of its output on
//! hard and pseudo-random texts.

use distill_objectives::{Chunker, EnglishChunker, Span, Units};

use crate::common::pseudo_random;

/// The character span of the `occurrence`-th occurrence of `sub` in `text`.
fn char_span(text: &str, sub: &str, occurrence: usize) -> Span {
    let (byte, _) = text
        .match_indices(sub)
        .nth(occurrence)
        .unwrap_or_else(|| panic!("`{sub}` #{occurrence} not in `{text}`"));
    let start = text[..byte].chars().count();
    Span::new(start, start + sub.chars().count())
}

/// Spans of the listed substrings, in order; `"x#1"` is the second occurrence of `x`.
fn spans_of(text: &str, subs: &[&str]) -> Vec<Span> {
    subs.iter()
        .map(|s| match s.rsplit_once('#') {
            Some((sub, n)) => char_span(text, sub, n.parse().unwrap()),
            None => char_span(text, s, 0),
        })
        .collect()
}

/// The text of each span, for readable failures.
fn show(text: &str, spans: &[Span]) -> Vec<String> {
    spans
        .iter()
        .map(|s| text.chars().skip(s.start).take(s.end - s.start).collect())
        .collect()
}

fn assert_units(text: &str, phrases: &[&str], words: &[&str]) {
    let got = EnglishChunker.units(text);
    let want = Units {
        words: spans_of(text, words),
        phrases: spans_of(text, phrases),
    };
    assert_eq!(
        (show(text, &got.phrases), show(text, &got.words)),
        (show(text, &want.phrases), show(text, &want.words)),
        "{text}"
    );
    assert_eq!(got, want, "{text}");
}

#[test]
fn noun_phrases_and_verb_groups_by_hand() {
    assert_units(
        "The model has been trained on 3.5 billion tokens.",
        &["The model", "has been trained", "3.5 billion tokens"],
        &[
            "The", "model", "has", "been", "trained", "3.5", "billion", "tokens",
        ],
    );
    assert_units(
        "Results were carefully checked and then quickly reported.",
        &["Results", "were carefully checked", "then quickly reported"],
        &[
            "Results",
            "were",
            "carefully",
            "checked",
            "then",
            "quickly",
            "reported",
        ],
    );
    // A listed verb after a determiner or possessive is a noun.
    assert_units(
        "Their work shows the use of tools.",
        &["Their work", "shows", "the use", "tools"],
        &["Their", "work", "shows", "the", "use", "tools"],
    );
    // Pronouns (contractions included) are one-word noun phrases; prepositions and
    // conjunctions break; "the" alone is not a phrase.
    assert_units(
        "I think it's the best café in 東京 — naïve, but fun!",
        &[
            "I",
            "think",
            "it's",
            "the best café",
            "東京",
            "naïve",
            "fun",
        ],
        &[
            "I", "think", "it's", "the", "best", "café", "東京", "naïve", "fun",
        ],
    );
    assert_units(
        "We sold 1,000 units to all of them.",
        &["We", "sold", "1,000 units", "them"],
        &["We", "sold", "1,000", "units", "them"],
    );
}

#[test]
fn punctuation_quotes_and_negation_break_phrases() {
    // "Don’t" is a negation (spaCy's "n't" is not an adverb): the group is "use" alone;
    // curly quotes, "•" and ";" break the noun phrases.
    assert_units(
        "• Don’t use “state-of-the-art” models; they quickly learn.",
        &["use", "state-of-the-art", "models", "they", "quickly learn"],
        &[
            "use",
            "state-of-the-art",
            "models",
            "they",
            "quickly",
            "learn",
        ],
    );
    // A trailing curly apostrophe is punctuation; internal apostrophes, hyphens, the period
    // of a number and combining accents stay inside a word.
    let text = "Rock'n'roll fans’ 3.5-inch e\u{301}te\u{301} posters";
    assert_units(
        text,
        &["Rock'n'roll fans", "3.5-inch e\u{301}te\u{301} posters"],
        &[
            "Rock'n'roll",
            "fans",
            "3.5-inch",
            "e\u{301}te\u{301}",
            "posters",
        ],
    );
}

#[test]
fn partially_overlapping_verb_groups_both_survive_and_share_words_once() {
    // VERB ADV VERB ADV: "came back" and "back started again" overlap on "back"; "started
    // again" is inside the second and filtered out.
    assert_units(
        "He came back started again.",
        &["He", "came back", "back started again"],
        &["He", "came", "back", "started", "again"],
    );
}

#[test]
fn texts_without_content_words_have_no_units() {
    for text in [
        "",
        "   \n\t ",
        "•••  — “” ‘’ !! 🦀🚀",
        "and or but to of",
        "the a an",
    ] {
        assert_eq!(EnglishChunker.units(text), Units::default(), "{text:?}");
    }
}

const HARD_TEXTS: &[&str] = &[
    "• The “best” model scored 3.5/5 — don’t trust 🦀 or 🚀 naïve café reviews.",
    "Rust’s borrow checker prevents data races. Memory safety comes without a garbage collector.",
    "東京 has 14 million people; e\u{301}te\u{301} 👩\u{200d}💻 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 works, self-supervised pre-training too!",
    "‘Quoted’ words, \"straight\" ones, and (parenthesised) asides — plus 1,000.50 items.",
    "- leading hyphen, trailing hyphen- and 'quote' marks'' x-\n\n• bullet\n• another one",
    "It's what we've always done: running, jumping and stopped-by visits.",
];

/// Pseudo-random texts glued from hard fragments, sometimes without separators.
fn random_texts() -> Vec<String> {
    const PIECES: &[&str] = &[
        "the",
        "model",
        "is",
        "quickly",
        "trained",
        "don’t",
        "it's",
        "•",
        "“",
        "”",
        "3.5",
        "1,000",
        "🦀",
        "naïve",
        "東京",
        "-",
        "'",
        "’",
        ",",
        ".",
        "e\u{301}",
        "state-of-the-art",
        "x-",
        "-y",
        "..",
        "1.",
        ".5",
        "a",
        "I",
        "their",
        "use",
        "of",
        "were",
        "not",
        "𝔘",
        "\u{200d}",
        "Q4",
        "'s",
    ];
    const SEPARATORS: &[&str] = &[" ", " ", " ", "", "  ", "\n", "\t", " — "];
    (0..300u64)
        .map(|seed| {
            let r = pseudo_random(40, seed + 7, 1.0);
            let n = 1 + ((r[0] + 1.0) * 9.5) as usize;
            (0..n)
                .map(|i| {
                    let p = ((r[2 * i + 1] + 1.0) / 2.0 * PIECES.len() as f64) as usize;
                    let s = ((r[2 * i + 2] + 1.0) / 2.0 * SEPARATORS.len() as f64) as usize;
                    format!(
                        "{}{}",
                        PIECES[p.min(PIECES.len() - 1)],
                        SEPARATORS[s.min(SEPARATORS.len() - 1)]
                    )
                })
                .collect()
        })
        .collect()
}

fn check_properties(text: &str) {
    let chars: Vec<char> = text.chars().collect();
    let units = EnglishChunker.units(text);
    units
        .validate(chars.len())
        .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(EnglishChunker.units(text), units, "deterministic: {text:?}");
    let slice = |s: &Span| &chars[s.start..s.end];
    // Words: sorted and disjoint, no whitespace, at least one letter or digit, starting and
    // ending with one (so never punctuation-only), each inside a kept phrase.
    for w in units.words.windows(2) {
        assert!(w[0].end <= w[1].start, "{text:?}: words overlap {:?}", w);
    }
    for w in &units.words {
        let cs = slice(w);
        assert!(!cs.iter().any(|c| c.is_whitespace()), "{text:?}: {cs:?}");
        assert!(cs[0].is_alphanumeric(), "{text:?}: {cs:?}");
        let last = *cs.last().unwrap();
        assert!(
            last.is_alphanumeric() || ('\u{300}'..='\u{36f}').contains(&last),
            "{text:?}: {cs:?}"
        );
        assert!(
            units.phrases.iter().any(|p| p.contains(w)),
            "{text:?}: word {w} outside every phrase"
        );
    }
    // Phrases: sorted by start, none inside another, each starting at a word's start and
    // ending at a word's end, never starting or ending with whitespace or punctuation.
    for p in units.phrases.windows(2) {
        assert!(p[0].start <= p[1].start, "{text:?}");
    }
    for (i, a) in units.phrases.iter().enumerate() {
        for (j, b) in units.phrases.iter().enumerate() {
            assert!(i == j || !a.contains(b), "{text:?}: {a} ⊇ {b}");
        }
        assert!(units.words.iter().any(|w| w.start == a.start), "{text:?}");
        assert!(units.words.iter().any(|w| w.end == a.end), "{text:?}");
        let cs = slice(a);
        assert!(cs[0].is_alphanumeric(), "{text:?}: {cs:?}");
    }
}

#[test]
fn output_properties_on_hard_and_random_texts() {
    let randoms = random_texts();
    let mut with_units = 0;
    for text in HARD_TEXTS
        .iter()
        .copied()
        .chain(randoms.iter().map(String::as_str))
    {
        check_properties(text);
        with_units += usize::from(!EnglishChunker.units(text).phrases.is_empty());
    }
    assert!(with_units > 200, "only {with_units} texts have phrases");
}

#[test]
fn chunker_is_usable_as_a_shared_trait_object() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EnglishChunker>();
    let chunker: Box<dyn Chunker> = Box::new(EnglishChunker);
    let text = "The cat sat.";
    assert_eq!(chunker.units(text), EnglishChunker.units(text));
    assert_eq!(
        chunker.units(text).phrases,
        vec![char_span(text, "The cat", 0), char_span(text, "sat", 0)]
    );
}
