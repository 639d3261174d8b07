//! Chunkers: response text → [`Units`], for MTA (arXiv 2605.01374). The documentation is on
//! the public items: [`Chunker`], [`EnglishChunker`].

use crate::units::{filter_overlaps, Span, Units};

/// Splits a response into [`Units`], for MTA (arXiv 2605.01374) when the data record carries
/// no precomputed units.
///
/// Implementations return units that pass [`Units::validate`] for the response's length in
/// characters: non-empty character spans within the response, each list sorted by start.
///
/// The authors (`distillm-master/span_utils.py`, `get_spans_offsets` and
/// `filter_overlapping_spans`) run spaCy's `en_core_web_sm` over the text and take
/// - **phrases**: every match of the token pattern `AUX* ADV* VERB+ ADV*` (spaCy's `Matcher`,
///   which returns every matching sub-span) plus `doc.noun_chunks`, filtered with
///   [`filter_overlaps`] (sort by `(start, −end)`, drop a span contained in the last kept one);
/// - **words**: the spaCy tokens of the kept phrases, each spanning from its start to the next
///   token's start within its phrase (the last one to its own end).
///
/// spaCy (a statistical tagger and parser) is not available in Rust: [`EnglishChunker`]
/// approximates it with closed-class word lists.
pub trait Chunker: Send + Sync {
    /// The words and phrases of `response`, as character offsets into it.
    fn units(&self, response: &str) -> Units;
}

/// A deterministic, rule-based English chunker that approximates the authors' spaCy pipeline
/// with closed-class word lists.
///
/// # Rules
/// 1. **Tokens.** A *word* is a maximal run of letters and digits (`char::is_alphanumeric`,
///    plus combining marks inside a word) in which an apostrophe (`'` or `’`) or a hyphen
///    (`-`, `‐`, `‑`) may join two alphanumeric characters and a period or a comma may join
///    two digits: `don’t`, `state-of-the-art`, `3.5`, `1,000`, `naïve`. Every other
///    non-whitespace character (punctuation, `•`, straight and curly quotes, emoji, symbols)
///    is a one-character *punctuation* token; whitespace separates tokens. Offsets are
///    characters (Unicode scalar values), not bytes.
/// 2. **Word classes** (looked up in lower case, `’` read as `'`), first match wins:
///    a word starting with a digit or a number word (`one` … `billion`) is a *number*;
///    a word with `n't` (`don't`, `isn't`) is *negation*, like `not` and `cannot`;
///    a personal, reflexive or indefinite pronoun (`I`, `them`, `itself`, `something`), or a
///    contraction of one (`it's`, `I'm`, `they'll`), is a *pronoun*;
///    then the lists of *determiners* (`the`, `a`, `this`, `some`, `all`, …), *possessives*
///    (`my`, `their`, …), *auxiliaries and modals* (forms of `be`, `have`, `do`; `will`,
///    `can`, `must`, …), *breakers* (prepositions, conjunctions, subordinators including
///    `that`, `to`, wh-words, a few interjections) and *adverbs* (`very`, `also`, `often`,
///    `here`, …);
///    a *verb* is a form of one of ~150 common verbs (the base form, or the word with `-s`,
///    `-es`, `-ies`, `-ed`, `-ied`, `-ing` stripped, `e` restored or a doubled consonant
///    undone, or a listed irregular form) — unless it directly follows a determiner, a
///    possessive or a number, where it is read as a noun (`the work`, `their use`);
///    a word of 5+ letters ending in `-ly` is an *adverb*, unless it ends like a listed
///    non-adverb (`family`, so also `superfamily`; `likely`, `daily`, …);
///    every other word is *open* (a noun, adjective, name or unlisted verb) — except that an
///    open word of 5+ letters ending in `-ed` or `-ing` right after an auxiliary, adverb,
///    negation, pronoun or verb is a *verb* (`is encoded`, `never acquired`).
/// 3. **Verb groups**: at every token, the longest match of `AUX* ADV* VERB+ ADV*` over
///    consecutive tokens (auxiliaries, adverbs, verbs; punctuation and every other class
///    break it), as spaCy's `Matcher` pattern of the authors.
/// 4. **Noun phrases**: maximal runs of determiners, possessives, numbers and open words
///    (and verbs read as nouns), with trailing determiners, possessives and numbers removed;
///    a run that keeps no open word is not a phrase. A pronoun is a one-word noun phrase on
///    its own (spaCy's noun chunks include pronouns).
/// 5. **Phrases** = verb groups ∪ noun phrases, through [`filter_overlaps`] (the authors'
///    filter). **Words** = the words inside the kept phrases, each from its first to its last
///    character, sorted, a word shared by two partially overlapping phrases listed once.
///
/// # Where it differs from the authors' spaCy pipeline
/// - Word classes come from lists, not a tagger: an unlisted verb is an open word (so a
///   sentence's verb can end up inside a noun phrase: `the superfamily encompasses
///   proteins`), a listed verb after a determiner is always a noun, a predicative adjective
///   (`is good`) becomes a one-word noun phrase while one in `-ing` / `-ed` (`is interesting`)
///   becomes a verb group, `have` / `do` as main verbs are auxiliaries (no verb group), and
///   `that` is never a determiner (`that book` gives `book`; spaCy would also make the
///   relative pronoun `that` a noun chunk).
/// - Noun phrases are runs, not dependency subtrees: punctuation and quotes always break them
///   (spaCy can keep `the “best” model` or `the U.S. economy` together), adverbs always break
///   them (`a very good idea` gives `good idea`), and a run is not split where two
///   noun phrases meet without a function word between them (`gave the dog a bone`).
/// - Tokens are not spaCy's: `don’t`, `it's`, `John's` and `state-of-the-art` are one word
///   each (spaCy splits them into 2 to 7 tokens); `it's` / `I'm` form one pronoun phrase
///   (spaCy: the pronoun alone); wh-words (`which`, `who`) never form a noun phrase.
/// - Words end at their last character: the authors' words run to the next token's start
///   (they include the whitespace after the word) and include punctuation tokens inside a
///   phrase; a word in two overlapping phrases is listed twice by the authors, once here.
/// - The authors chunk the whole decoded text (prompt included); here only the response is
///   chunked (the units are response offsets, see [`unit_membership`](crate::unit_membership)).
#[derive(Clone, Debug, Default)]
pub struct EnglishChunker;

impl Chunker for EnglishChunker {
    fn units(&self, response: &str) -> Units {
        let tokens = classify(lex(response));
        let mut candidates = verb_groups(&tokens);
        candidates.extend(noun_phrases(&tokens));
        let phrases = filter_overlaps(candidates);
        let mut words: Vec<Span> = tokens
            .iter()
            .filter(|t| t.class != Class::Punct)
            .map(|t| t.span)
            .filter(|w| phrases.iter().any(|p| p.contains(w)))
            .collect();
        words.dedup();
        Units { words, phrases }
    }
}

/// A token's class (rule 2 of [`EnglishChunker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Punct,
    Number,
    Negation,
    Pronoun,
    Determiner,
    Possessive,
    Aux,
    Breaker,
    Adverb,
    Verb,
    Open,
}

#[derive(Clone, Debug)]
struct Token {
    span: Span,
    /// Lower case, `’` replaced by `'`; empty for punctuation.
    lower: String,
    class: Class,
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{2011}')
}

/// Combining marks that continue a word (decomposed accents).
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// Rule 1: words and one-character punctuation tokens, with character offsets.
fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if !c.is_alphanumeric() {
            tokens.push(Token {
                span: Span::new(i, i + 1),
                lower: String::new(),
                class: Class::Punct,
            });
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        loop {
            match chars.get(i) {
                Some(&c) if c.is_alphanumeric() || is_combining_mark(c) => i += 1,
                Some(&c) if i + 1 < chars.len() && chars[i + 1].is_alphanumeric() => {
                    let prev = chars[i - 1];
                    let joins = ((is_apostrophe(c) || is_hyphen(c)) && prev.is_alphanumeric())
                        || ((c == '.' || c == ',')
                            && prev.is_ascii_digit()
                            && chars[i + 1].is_ascii_digit());
                    if !joins {
                        break;
                    }
                    i += 2;
                }
                _ => break,
            }
        }
        let lower = chars[start..i]
            .iter()
            .flat_map(|c| c.to_lowercase())
            .map(|c| if c == '\u{2019}' { '\'' } else { c })
            .collect();
        tokens.push(Token {
            span: Span::new(start, i),
            lower,
            class: Class::Open,
        });
    }
    tokens
}

/// Rule 2: the class of every word, in context (a verb after a determiner is a noun).
fn classify(mut tokens: Vec<Token>) -> Vec<Token> {
    let mut previous = Class::Punct;
    for token in &mut tokens {
        if token.class != Class::Punct {
            token.class = match word_class(&token.lower) {
                Class::Verb
                    if matches!(
                        previous,
                        Class::Determiner | Class::Possessive | Class::Number
                    ) =>
                {
                    Class::Open
                }
                Class::Open
                    if is_participle(&token.lower)
                        && matches!(
                            previous,
                            Class::Aux
                                | Class::Adverb
                                | Class::Negation
                                | Class::Pronoun
                                | Class::Verb
                        ) =>
                {
                    Class::Verb
                }
                class => class,
            };
        }
        previous = token.class;
    }
    tokens
}

/// Whether an unlisted word looks like a participle or past form (`-ed`, `-ing`, 5+ letters).
fn is_participle(w: &str) -> bool {
    w.chars().count() >= 5 && (w.ends_with("ed") || w.ends_with("ing"))
}

/// The context-free class of a lower-case word.
fn word_class(w: &str) -> Class {
    if w.starts_with(|c: char| c.is_ascii_digit()) || NUMBER_WORDS.contains(&w) {
        return Class::Number;
    }
    if w.ends_with("n't") || NEGATIONS.contains(&w) {
        return Class::Negation;
    }
    if PRONOUNS.contains(&w) {
        return Class::Pronoun;
    }
    if let Some((base, _)) = w.split_once('\'') {
        if PRONOUNS.contains(&base) || base == "that" || base == "there" {
            return Class::Pronoun;
        }
    }
    let lists: [(&[&str], Class); 5] = [
        (DETERMINERS, Class::Determiner),
        (POSSESSIVES, Class::Possessive),
        (AUXILIARIES, Class::Aux),
        (BREAKERS, Class::Breaker),
        (ADVERBS, Class::Adverb),
    ];
    if let Some((_, class)) = lists.iter().find(|(list, _)| list.contains(&w)) {
        return *class;
    }
    if is_verb(w) {
        return Class::Verb;
    }
    if w.chars().count() >= 5 && w.ends_with("ly") && !NOT_ADVERBS.iter().any(|n| w.ends_with(n)) {
        return Class::Adverb;
    }
    Class::Open
}

/// Whether `w` is a form of a listed verb (rule 2).
fn is_verb(w: &str) -> bool {
    if IRREGULAR_VERB_FORMS.contains(&w) || VERBS.contains(&w) {
        return true;
    }
    let stem_is_verb = |stem: &str| stem.len() >= 2 && VERBS.contains(&stem);
    // `stopp` → `stop`: a doubled final ASCII consonant undone.
    let undoubled = |stem: &str| {
        let mut last = stem.chars().rev();
        match (last.next(), last.next()) {
            (Some(a), Some(b)) if a == b && a.is_ascii_alphabetic() => {
                stem_is_verb(&stem[..stem.len() - 1])
            }
            _ => false,
        }
    };
    for (suffix, replacement) in [("ies", "y"), ("ied", "y")] {
        if let Some(stem) = w.strip_suffix(suffix) {
            if stem_is_verb(&format!("{stem}{replacement}")) {
                return true;
            }
        }
    }
    if let Some(stem) = w.strip_suffix("es") {
        if stem_is_verb(stem) {
            return true;
        }
    }
    if let Some(stem) = w.strip_suffix('s') {
        if stem_is_verb(stem) {
            return true;
        }
    }
    for suffix in ["ed", "ing"] {
        if let Some(stem) = w.strip_suffix(suffix) {
            if stem_is_verb(stem) || stem_is_verb(&format!("{stem}e")) || undoubled(stem) {
                return true;
            }
        }
    }
    false
}

/// Rule 3: the longest `AUX* ADV* VERB+ ADV*` match at every token.
fn verb_groups(tokens: &[Token]) -> Vec<Span> {
    let class = |j: usize| tokens.get(j).map(|t| t.class);
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        let mut j = i;
        while class(j) == Some(Class::Aux) {
            j += 1;
        }
        while class(j) == Some(Class::Adverb) {
            j += 1;
        }
        let first_verb = j;
        while class(j) == Some(Class::Verb) {
            j += 1;
        }
        if j == first_verb {
            continue;
        }
        while class(j) == Some(Class::Adverb) {
            j += 1;
        }
        out.push(Span::new(tokens[i].span.start, tokens[j - 1].span.end));
    }
    out
}

/// Rule 4: noun phrases.
fn noun_phrases(tokens: &[Token]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut run: Vec<&Token> = Vec::new();
    let close = |run: &mut Vec<&Token>, out: &mut Vec<Span>| {
        while run.last().is_some_and(|t| t.class != Class::Open) {
            run.pop();
        }
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            out.push(Span::new(first.span.start, last.span.end));
        }
        run.clear();
    };
    for token in tokens {
        match token.class {
            Class::Determiner | Class::Possessive | Class::Number | Class::Open => run.push(token),
            Class::Pronoun => {
                close(&mut run, &mut out);
                out.push(token.span);
            }
            _ => close(&mut run, &mut out),
        }
    }
    close(&mut run, &mut out);
    out
}

#[rustfmt::skip]
const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "thousand", "million", "billion",
];

const NEGATIONS: &[&str] = &["not", "cannot"];

#[rustfmt::skip]
const PRONOUNS: &[&str] = &[
    "i", "you", "he", "she", "it", "we", "they", "me", "him", "us", "them", "myself", "yourself",
    "himself", "herself", "itself", "ourselves", "yourselves", "themselves", "mine", "yours",
    "hers", "ours", "theirs", "someone", "somebody", "something", "anyone", "anybody", "anything",
    "everyone", "everybody", "everything", "nobody", "nothing",
];

#[rustfmt::skip]
const DETERMINERS: &[&str] = &[
    "a", "an", "the", "this", "these", "those", "each", "every", "some", "any", "no", "all", "both",
    "either", "neither", "another", "such", "many", "much", "few", "several", "more", "most",
    "less", "least",
];

const POSSESSIVES: &[&str] = &["my", "your", "his", "her", "its", "our", "their"];

#[rustfmt::skip]
const AUXILIARIES: &[&str] = &[
    "be", "am", "is", "are", "was", "were", "been", "being", "have", "has", "had", "having", "do",
    "does", "did", "will", "would", "shall", "should", "can", "could", "may", "might", "must",
    "ought",
];

#[rustfmt::skip]
const BREAKERS: &[&str] = &[
    // prepositions
    "about", "above", "across", "after", "against", "along", "among", "around", "as", "at",
    "before", "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by",
    "despite", "down", "during", "except", "for", "from", "in", "inside", "into", "like", "near",
    "of", "off", "on", "onto", "out", "outside", "over", "past", "per", "since", "than", "through",
    "throughout", "till", "to", "toward", "towards", "under", "underneath", "unlike", "until", "up",
    "upon", "via", "with", "within", "without",
    // conjunctions and subordinators
    "and", "or", "but", "nor", "so", "yet", "if", "because", "while", "whilst", "although",
    "though", "whereas", "unless", "whether", "once", "that",
    // wh-words
    "who", "whom", "whose", "which", "what", "when", "where", "why", "how", "whatever", "whichever",
    "whoever", "whenever", "wherever",
    // interjections
    "yes", "oh", "please",
];

#[rustfmt::skip]
const ADVERBS: &[&str] = &[
    "also", "just", "very", "often", "always", "still", "already", "now", "then", "here", "there",
    "too", "quite", "rather", "soon", "even", "almost", "again", "ever", "perhaps", "maybe",
    "instead", "together", "away", "back", "well", "however", "therefore", "thus", "later",
    "sometimes", "further", "else", "never",
];

/// Endings of words in `-ly` that are not adverbs (`family` also covers `superfamily`).
#[rustfmt::skip]
const NOT_ADVERBS: &[&str] = &[
    "family", "likely", "unlikely", "friendly", "lonely", "lovely", "ugly", "holy", "daily",
    "weekly", "monthly", "yearly", "hourly", "costly", "elderly", "silly", "early", "italy",
    "assembly", "anomaly", "butterfly", "monopoly", "melancholy", "jelly", "belly", "rally", "ally",
    "bully", "curly", "deadly", "orderly", "timely", "worldly", "wholly", "july",
];

/// Base forms of common verbs (a verb is a form of one of these, see rule 2).
#[rustfmt::skip]
const VERBS: &[&str] = &[
    "add", "agree", "allow", "apply", "appear", "ask", "become", "begin", "believe", "bring",
    "build", "buy", "call", "carry", "catch", "cause", "change", "check", "choose", "come",
    "compare", "compute", "consider", "contain", "continue", "create", "cut", "decide", "define",
    "describe", "design", "develop", "die", "draw", "drink", "drive", "eat", "enable", "encourage",
    "ensure", "enjoy", "explain", "fall", "feel", "find", "fly", "follow", "forget", "generate",
    "get", "give", "go", "grow", "happen", "hear", "help", "hold", "identify", "improve", "include",
    "increase", "indicate", "involve", "keep", "know", "learn", "leave", "let", "lie", "listen",
    "live", "look", "lose", "love", "make", "mean", "meet", "move", "need", "offer", "open", "pay",
    "perform", "pick", "place", "plan", "play", "prefer", "prepare", "produce", "protect",
    "provide", "pull", "push", "put", "reach", "read", "receive", "recommend", "reduce", "refer",
    "rely", "remain", "remember", "remove", "reply", "report", "represent", "require", "return",
    "run", "save", "say", "see", "seem", "sell", "send", "serve", "set", "show", "sing", "sit",
    "sleep", "speak", "spend", "stand", "start", "stay", "stop", "study", "suggest", "supply",
    "support", "take", "talk", "teach", "tell", "tend", "think", "train", "travel", "try", "turn",
    "understand", "use", "visit", "wait", "walk", "want", "watch", "wear", "win", "wish", "work",
    "write",
];

/// Irregular past and participle forms of the listed verbs.
#[rustfmt::skip]
const IRREGULAR_VERB_FORMS: &[&str] = &[
    "became", "began", "begun", "bought", "brought", "built", "came", "caught", "chose", "chosen",
    "done", "drank", "drawn", "drew", "driven", "drove", "drunk", "eaten", "ate", "fallen", "fell",
    "felt", "flew", "flown", "forgot", "forgotten", "found", "gave", "given", "gone", "got",
    "gotten", "grew", "grown", "heard", "held", "kept", "knew", "known", "lain", "lay", "led",
    "left", "lost", "made", "meant", "met", "paid", "ran", "read", "said", "sang", "sat", "saw",
    "seen", "sent", "slept", "sold", "spent", "spoke", "spoken", "stood", "sung", "taken", "taught",
    "thought", "told", "took", "understood", "went", "won", "wore", "worn", "written", "wrote",
];
