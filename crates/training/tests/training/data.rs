//! Corpus formats and seeded, length-grouped batching.

use std::path::Path;

use training::embedding::{Corpus, DataFormat, DataSection, Example};
use training::Batching;

fn section(format: DataFormat) -> DataSection {
    DataSection {
        path: Some("x".into()),
        sources: Vec::new(),
        shuffle_seed: 0,
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

/// A `[data]` section pooling `sources` (TOML, as a user writes it), validated.
fn pooled(dir: &Path, sources: &str, extra: &str) -> training::Result<DataSection> {
    let format = if extra.contains("format") {
        ""
    } else {
        "format = \"sentences\"\n"
    };
    let text = format!(
        "output_dir = \"{out}\"\n[model]\npath = \"m\"\n[data]\n{format}{extra}\n\
         {sources}\n[objective]\nkind = \"mrl\"\n[training]\nbatch_size = 2\nsteps = 1\n",
        out = dir.join("out").display(),
    );
    let path = dir.join("pool.toml");
    std::fs::write(&path, text).unwrap();
    Ok(training::embedding::EmbeddingConfig::from_file(&path, &[])?.data)
}

#[test]
fn pooled_sources_keep_each_distinct_text_once_and_shuffle_with_their_own_seed() {
    let tmp = crate::common::TempDir::new("pool");
    let dir = tmp.path();
    std::fs::write(
        dir.join("sts.tsv"),
        "score\ts1\ts2\n1\ta\tb\n2\tb\tc\r\n\n3\td\ta\n",
    )
    .unwrap();
    std::fs::write(dir.join("cls.tsv"), "label\ttext\nx\tc\ny\te\nx\tf\n").unwrap();
    let sources = format!(
        "[[data.sources]]\npath = \"{}\"\ncolumns = [1, 2]\nskip_header = true\n\
         [[data.sources]]\npath = \"{}\"\ncolumns = [1]\nskip_header = true\n",
        dir.join("sts.tsv").display(),
        dir.join("cls.tsv").display()
    );
    let texts = |section: &DataSection| -> Vec<String> {
        Corpus::load(section)
            .unwrap()
            .examples
            .iter()
            .map(|e| e.texts()[0].to_string())
            .collect()
    };
    let section = pooled(dir, &sources, "").unwrap();
    let all = texts(&section);
    let mut sorted = all.clone();
    sorted.sort();
    // a, b (row 1), c (row 2; b again dropped), d (row 3; a dropped), then e, f (c dropped).
    assert_eq!(sorted, ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(texts(&section), all, "the same seed gives the same order");
    let orders: std::collections::HashSet<Vec<String>> = (0..8)
        .map(|seed| texts(&pooled(dir, &sources, &format!("shuffle_seed = {seed}")).unwrap()))
        .collect();
    assert!(orders.len() > 1, "the seed moves the order");
    // A cap takes the first N of the shuffled pool.
    let capped = texts(&pooled(dir, &sources, "max_examples = 3").unwrap());
    assert_eq!(capped, all[..3]);
}

#[test]
fn bad_pooled_sources_name_the_key_or_the_file_and_line() {
    let tmp = crate::common::TempDir::new("pool-bad");
    let dir = tmp.path();
    std::fs::write(dir.join("one.tsv"), "label\ttext\nx\thello\ny\n").unwrap();
    let source = |columns: &str| {
        format!(
            "[[data.sources]]\npath = \"{}\"\ncolumns = {columns}\nskip_header = true\n",
            dir.join("one.tsv").display()
        )
    };
    // A row without the listed column: the file and its line.
    let section = pooled(dir, &source("[1]"), "").unwrap();
    let err = Corpus::load(&section).unwrap_err().to_string();
    assert!(err.contains("one.tsv") && err.contains("line 3"), "{err}");
    for (sources, extra, key) in [
        (source("[1, 1]"), "", "data.sources[0].columns"),
        (source("[1]"), "path = \"x.txt\"", "data.sources"),
        (String::new(), "", "data.path"),
        (source("[1]"), "column = 1", "data.sources"),
        (source("[1]"), "max_examples = 0", "data.max_examples"),
        (source("[1]"), "format = \"pairs\"", "data.sources"),
    ] {
        let err = pooled(dir, &sources, extra).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    // Fewer than two distinct texts.
    std::fs::write(dir.join("same.tsv"), "h\nsame\nsame\n").unwrap();
    let section = pooled(
        dir,
        &format!(
            "[[data.sources]]\npath = \"{}\"\nskip_header = true\n",
            dir.join("same.tsv").display()
        ),
        "",
    )
    .unwrap();
    let err = Corpus::load(&section).unwrap_err().to_string();
    assert!(err.contains("1 distinct sentence"), "{err}");
}

#[test]
#[ignore = "needs $MRL_SHARED/data (STS-B, SICK, Banking77 train splits)"]
fn the_mix_configs_pool_20000_of_the_25323_distinct_shared_sentences() {
    test_support::shared_path("data/sickr_train.tsv");
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut pools = Vec::new();
    for name in ["mipic-minilm-mix", "mrl-minilm-mix", "ese-minilm-mix"] {
        let config = training::embedding::EmbeddingConfig::from_file(
            &configs.join(format!("{name}.toml")),
            &[],
        )
        .unwrap();
        let corpus = Corpus::load(&config.data).unwrap();
        assert_eq!(corpus.len(), 20_000, "{name}");
        let uncapped = DataSection {
            max_examples: None,
            ..config.data.clone()
        };
        assert_eq!(Corpus::load(&uncapped).unwrap().len(), 25_323, "{name}");
        pools.push(corpus.examples);
    }
    assert!(
        pools.windows(2).all(|w| w[0] == w[1]),
        "one corpus for the three objectives"
    );
}
