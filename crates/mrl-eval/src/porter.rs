//! The Porter stemmer as NLTK's `PorterStemmer()` runs it by default — mode `NLTK_EXTENSIONS` —
//! which is the stemmer `rouge_score` 0.1.2 uses (`rouge_scorer.RougeScorer(..,
//! use_stemmer=True)` builds `nltk.stem.porter.PorterStemmer()` with no argument).
//!
//! M. F. Porter, "An algorithm for suffix stripping", *Program* 14(3):130–137, 1980, with the
//! deviations NLTK documents for that mode:
//!
//! - irregular forms are looked up first: `sky`/`skies` → `sky`, `dying` → `die`, `lying` →
//!   `lie`, `tying` → `tie`, `news` → `news`, `inning(s)` → `inning`, `outing(s)` → `outing`,
//!   `canning(s)` → `canning`, `howe`, `proceed`, `exceed`, `succeed` unchanged;
//! - words of one or two characters are returned unchanged (lower-cased);
//! - step 1a: a four-letter word ending in `ies` becomes `…ie` (`dies` → `die`);
//! - step 1b: `ied` becomes `ie` in a four-letter word, `i` otherwise (`died` → `die`,
//!   `spied` → `spi`), and nothing else of step 1b applies;
//! - step 1c: `y` → `i` only after a consonant that is not the word's first letter
//!   (`happy` → `happi`, `enjoy` and `by` unchanged, `spy` → `spi`);
//! - step 2: `alli` → `al` (measure > 0) is tried first and step 2 then runs again on the
//!   result; `bli` → `ble` replaces the paper's `abli` → `able`; `fulli` → `ful`; `logi` →
//!   `log` when the stem *with* its `l` has measure > 0 (`geologi` → `geolog`);
//! - condition `*o` (ends consonant–vowel–consonant, the last not `w`, `x`, `y`) also holds for
//!   a two-letter stem vowel–consonant.
//!
//! As everywhere in the algorithm, a rule list applies the *first* rule whose suffix matches;
//! if its condition fails, the step leaves the word unchanged. A letter is a consonant unless
//! it is `a e i o u`, or a `y` preceded by a consonant; any other character (a digit, say)
//! counts as a consonant.

/// The stem of `word` (lower-cased first, as NLTK's `stem(word)` does), for any text; ROUGE
/// passes it lower-case ASCII `[a-z0-9]+` tokens longer than three characters.
///
/// ```
/// use mrl_eval::porter::stem;
/// assert_eq!(stem("generously"), "gener");
/// assert_eq!(stem("happiness"), "happi");
/// assert_eq!(stem("Running"), "run");
/// assert_eq!(stem("dies"), "die");
/// ```
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(base) = irregular_form(&lower) {
        return base.to_string();
    }
    // NLTK tests the length of the word as given, before lower-casing.
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: Vec<char> = lower.chars().collect();
    step1a(&mut w);
    step1b(&mut w);
    step1c(&mut w);
    step2(&mut w);
    step3(&mut w);
    step4(&mut w);
    step5a(&mut w);
    step5b(&mut w);
    w.into_iter().collect()
}

/// NLTK's table of irregular forms (`NLTK_EXTENSIONS` only).
fn irregular_form(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

fn is_vowel_letter(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Whether `w[i]` is a consonant. A `y` is a consonant at the start of the word and after a
/// vowel, a vowel after a consonant: along a run of `y`s the answer alternates, so it is read
/// off the letter before the run and the run's length (no recursion: a token of a thousand
/// `y`s is fine).
fn is_consonant(w: &[char], i: usize) -> bool {
    let c = w[i];
    if is_vowel_letter(c) {
        return false;
    }
    if c != 'y' {
        return true;
    }
    // The run of `y`s ending at i: w[start..=i].
    let start = w[..i].iter().rposition(|&c| c != 'y').map_or(0, |p| p + 1);
    let run = i - start + 1;
    if start == 0 {
        // The run starts the word: its first `y` is a consonant, then they alternate.
        return run % 2 == 1;
    }
    // The letter before the run is not a `y`; each `y` of the run flips the one before it.
    let before_is_consonant = !is_vowel_letter(w[start - 1]);
    before_is_consonant != (run % 2 == 1)
}

/// Consonant flags of every position, in one pass.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let flag = if is_vowel_letter(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

/// Porter's measure m of `[C](VC){m}[V]`: the number of vowel → consonant transitions.
fn measure(w: &[char]) -> usize {
    consonant_flags(w)
        .windows(2)
        .filter(|pair| !pair[0] && pair[1])
        .count()
}

/// `*v*`: the stem contains a vowel.
fn contains_vowel(w: &[char]) -> bool {
    consonant_flags(w).iter().any(|&c| !c)
}

/// `*d`: the stem ends with a double consonant.
fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// `*o`: the stem ends consonant–vowel–consonant, the last not `w`, `x` or `y`; or (NLTK) the
/// stem is exactly vowel–consonant.
fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let n = suffix.chars().count();
    w.len() >= n && w[w.len() - n..].iter().copied().eq(suffix.chars())
}

/// Replaces the last `len` characters of `w` by `replacement`.
fn replace_tail(w: &mut Vec<char>, len: usize, replacement: &str) {
    w.truncate(w.len() - len);
    w.extend(replacement.chars());
}

/// The condition of a rule, on the stem left once the suffix is removed.
#[derive(Clone, Copy)]
enum Condition {
    Always,
    /// m > k.
    MeasureAbove(usize),
    /// m > 1 and the stem ends in `s` or `t` (step 4 `ion`).
    MeasureAbove1AndEndsST,
    /// The stem followed by `l` has m > 0 (NLTK's step 2 `logi`).
    MeasureWithLAbove0,
    /// The stem is longer than one letter and ends with a consonant (NLTK's step 1c).
    LongerThanOneEndsConsonant,
}

impl Condition {
    fn holds(self, stem: &[char]) -> bool {
        match self {
            Condition::Always => true,
            Condition::MeasureAbove(k) => measure(stem) > k,
            Condition::MeasureAbove1AndEndsST => {
                measure(stem) > 1 && matches!(stem.last(), Some('s' | 't'))
            }
            Condition::MeasureWithLAbove0 => {
                let mut with_l = stem.to_vec();
                with_l.push('l');
                measure(&with_l) > 0
            }
            Condition::LongerThanOneEndsConsonant => {
                stem.len() > 1 && is_consonant(stem, stem.len() - 1)
            }
        }
    }
}

/// Applies the first rule whose suffix ends `w` if its condition holds (else nothing).
fn apply_rules(w: &mut Vec<char>, rules: &[(&str, &str, Condition)]) {
    for &(suffix, replacement, condition) in rules {
        if ends_with(w, suffix) {
            let len = suffix.chars().count();
            if condition.holds(&w[..w.len() - len]) {
                replace_tail(w, len, replacement);
            }
            return;
        }
    }
}

const M0: Condition = Condition::MeasureAbove(0);
const M1: Condition = Condition::MeasureAbove(1);

/// Plurals: `sses` → `ss`, `ies` → `i` (`ie` in a four-letter word), `ss` kept, `s` dropped.
fn step1a(w: &mut Vec<char>) {
    if w.len() == 4 && ends_with(w, "ies") {
        replace_tail(w, 3, "ie");
        return;
    }
    apply_rules(
        w,
        &[
            ("sses", "ss", Condition::Always),
            ("ies", "i", Condition::Always),
            ("ss", "ss", Condition::Always),
            ("s", "", Condition::Always),
        ],
    );
}

/// Past tenses and gerunds: `ied`, `eed`, then `ed` / `ing` after a stem with a vowel, with the
/// clean-up (`at` → `ate`, `bl` → `ble`, `iz` → `ize`, undoubling, `e` restored after `*o`).
fn step1b(w: &mut Vec<char>) {
    if ends_with(w, "ied") {
        let replacement = if w.len() == 4 { "ie" } else { "i" };
        replace_tail(w, 3, replacement);
        return;
    }
    if ends_with(w, "eed") {
        if measure(&w[..w.len() - 3]) > 0 {
            replace_tail(w, 3, "ee");
        }
        return;
    }
    let removed = ["ed", "ing"].into_iter().any(|suffix| {
        let len = suffix.len();
        if ends_with(w, suffix) && contains_vowel(&w[..w.len() - len]) {
            w.truncate(w.len() - len);
            true
        } else {
            false
        }
    });
    if !removed {
        return;
    }
    if ends_with(w, "at") || ends_with(w, "bl") || ends_with(w, "iz") {
        w.push('e');
    } else if ends_double_consonant(w) {
        if !matches!(w.last(), Some('l' | 's' | 'z')) {
            w.pop();
        }
    } else if measure(w) == 1 && ends_cvc(w) {
        w.push('e');
    }
}

/// `y` → `i` after a consonant that is not the first letter.
fn step1c(w: &mut Vec<char>) {
    apply_rules(w, &[("y", "i", Condition::LongerThanOneEndsConsonant)]);
}

/// Double suffixes to single ones (m > 0).
fn step2(w: &mut Vec<char>) {
    if ends_with(w, "alli") && measure(&w[..w.len() - 4]) > 0 {
        replace_tail(w, 4, "al");
        step2(w);
        return;
    }
    apply_rules(
        w,
        &[
            ("ational", "ate", M0),
            ("tional", "tion", M0),
            ("enci", "ence", M0),
            ("anci", "ance", M0),
            ("izer", "ize", M0),
            ("bli", "ble", M0),
            ("alli", "al", M0),
            ("entli", "ent", M0),
            ("eli", "e", M0),
            ("ousli", "ous", M0),
            ("ization", "ize", M0),
            ("ation", "ate", M0),
            ("ator", "ate", M0),
            ("alism", "al", M0),
            ("iveness", "ive", M0),
            ("fulness", "ful", M0),
            ("ousness", "ous", M0),
            ("aliti", "al", M0),
            ("iviti", "ive", M0),
            ("biliti", "ble", M0),
            ("fulli", "ful", M0),
            ("logi", "log", Condition::MeasureWithLAbove0),
        ],
    );
}

/// `-ic-`, `-full`, `-ness` etc. (m > 0).
fn step3(w: &mut Vec<char>) {
    apply_rules(
        w,
        &[
            ("icate", "ic", M0),
            ("ative", "", M0),
            ("alize", "al", M0),
            ("iciti", "ic", M0),
            ("ical", "ic", M0),
            ("ful", "", M0),
            ("ness", "", M0),
        ],
    );
}

/// Suffixes removed from stems with m > 1.
fn step4(w: &mut Vec<char>) {
    apply_rules(
        w,
        &[
            ("al", "", M1),
            ("ance", "", M1),
            ("ence", "", M1),
            ("er", "", M1),
            ("ic", "", M1),
            ("able", "", M1),
            ("ible", "", M1),
            ("ant", "", M1),
            ("ement", "", M1),
            ("ment", "", M1),
            ("ent", "", M1),
            ("ion", "", Condition::MeasureAbove1AndEndsST),
            ("ou", "", M1),
            ("ism", "", M1),
            ("ate", "", M1),
            ("iti", "", M1),
            ("ous", "", M1),
            ("ive", "", M1),
            ("ize", "", M1),
        ],
    );
}

/// A final `e` goes when m > 1, or m = 1 and not `*o`.
fn step5a(w: &mut Vec<char>) {
    if ends_with(w, "e") {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            w.pop();
        }
    }
}

/// `ll` → `l` when the word without its last letter has m > 1.
fn step5b(w: &mut Vec<char>) {
    if ends_with(w, "ll") && measure(&w[..w.len() - 1]) > 1 {
        w.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn measures_of_the_paper() {
        for (word, m) in [
            ("tr", 0),
            ("ee", 0),
            ("tree", 0),
            ("y", 0),
            ("by", 0),
            ("trouble", 1),
            ("oats", 1),
            ("trees", 1),
            ("ivy", 1),
            ("troubles", 2),
            ("private", 2),
            ("oaten", 2),
            ("orrery", 2),
        ] {
            assert_eq!(measure(&chars(word)), m, "{word}");
        }
    }

    #[test]
    fn y_is_a_consonant_at_the_start_and_after_a_vowel() {
        // toy: t, y consonants; syzygy: s, z, g consonants.
        let toy = chars("toy");
        assert!(is_consonant(&toy, 0) && !is_consonant(&toy, 1) && is_consonant(&toy, 2));
        let syzygy = chars("syzygy");
        let flags: Vec<bool> = (0..6).map(|i| is_consonant(&syzygy, i)).collect();
        assert_eq!(flags, [true, false, true, false, true, false]);
        // The run formula equals the one-pass flags on runs of y after a consonant, a vowel
        // and at the start.
        for word in ["yyyyy", "byyyy", "ayyyy", "ayyby"] {
            let w = chars(word);
            let flags = consonant_flags(&w);
            for (i, &flag) in flags.iter().enumerate() {
                assert_eq!(is_consonant(&w, i), flag, "{word}[{i}]");
            }
        }
    }

    #[test]
    fn examples_of_the_paper_and_of_nltk() {
        for (word, want) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("bled", "bled"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("skies", "sky"),
            ("dying", "die"),
            ("spied", "spi"),
            ("geologi", "geolog"),
            ("controll", "control"),
            ("yyyyyyyyyyyy", "yyyyyyyyyyyi"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }

    #[test]
    fn short_words_and_case() {
        assert_eq!(stem(""), "");
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("AS"), "as");
        assert_eq!(stem("HAPPINESS"), "happi");
    }
}
