//! Corpus formats and seeded, length-grouped batching.

use std::path::Path;

use training::embedding::{Corpus, DataFormat, DataSection, Example};
use training::Batching;

fn section(format: DataFormat) -> DataSection {
    DataSection {
        path: "x".into(),
        format,
        column: None,
        first_column: 0,
        skip_header: false,
        max_examples: None,
    }
}

#[test]
fn data_loaders_read_every_format() {
    let p = Path::new("mem.tsv");
    let s = Corpus::parse("a b\n\nc d\na b\n", p, &section(DataFormat::Sentences)).unwrap();
    assert_eq!(
        s.examples,
        vec![
            Example::Sentence("a b".into()),
            Example::Sentence("c d".into())
        ],
        "blank lines and duplicates are dropped"
    );
    let mut col = section(DataFormat::Sentences);
    col.column = Some(1);
    col.skip_header = true;
    let s = Corpus::parse("score\ts1\ts2\n1\tx\ty\n2\tz\tw\n", p, &col).unwrap();
    assert_eq!(s.examples[1], Example::Sentence("z".into()));
    let s = Corpus::parse("a\tb\nc\td\n", p, &section(DataFormat::Pairs)).unwrap();
    assert_eq!(s.examples[0], Example::Pair("a".into(), "b".into()));
    let s = Corpus::parse("a\tb\tc\nd\te\tf\n", p, &section(DataFormat::Triplets)).unwrap();
    assert_eq!(
        s.examples[1],
        Example::Triplet("d".into(), "e".into(), "f".into())
    );
    let s = Corpus::parse("4.5\ta\tb\n1\tc\td\n", p, &section(DataFormat::ScoredPairs)).unwrap();
    assert_eq!(s.examples[0], Example::Scored(4.5, "a".into(), "b".into()));

    let err = Corpus::parse(
        "4.5\ta\tb\nhigh\tc\td\n",
        p,
        &section(DataFormat::ScoredPairs),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("line 2") && err.to_string().contains("high"),
        "{err}"
    );
    let err = Corpus::parse("a\tb\nc\n", p, &section(DataFormat::Pairs)).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = Corpus::parse("only one\n", p, &section(DataFormat::Sentences)).unwrap_err();
    assert!(err.to_string().contains("at least 2"), "{err}");
}

#[test]
fn batching_is_seeded_complete_and_groups_lengths() {
    let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 61 + 1).collect();
    let b = Batching {
        batch_size: 8,
        length_grouping: true,
        pool_batches: 4,
        seed: 9,
        min_batch: 2,
    };
    let e0 = b.epoch(&lengths, 0);
    assert_eq!(
        e0,
        b.epoch(&lengths, 0),
        "same seed and epoch, same batches"
    );
    assert_ne!(e0, b.epoch(&lengths, 1), "another epoch, another order");
    assert_eq!(e0.len(), b.batches_per_epoch(103));
    let mut all: Vec<usize> = e0.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..103).collect::<Vec<_>>(),
        "every example once (103 = 12·8 + 7)"
    );
    // Padding (Σ batch · max length) is lower with grouping than without.
    let padded = |batches: &[Vec<usize>]| -> usize {
        batches
            .iter()
            .map(|bt| bt.len() * bt.iter().map(|&i| lengths[i]).max().unwrap())
            .sum()
    };
    let plain = Batching {
        length_grouping: false,
        ..b
    }
    .epoch(&lengths, 0);
    assert!(
        padded(&e0) < padded(&plain),
        "{} vs {}",
        padded(&e0),
        padded(&plain)
    );
    // A trailing batch of one example is dropped (in-batch negatives need two).
    assert_eq!(b.batches_per_epoch(17), 2);
    assert_eq!(b.batches_per_epoch(18), 3);
}
