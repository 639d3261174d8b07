//! The CLI fault harness: every `mrl` command run on generated bad inputs — malformed data
//! and config files, corrupt weights, flipped and truncated checkpoint bytes, extreme and
//! non-finite flag values, unwritable outputs and a full disk. For each case it asserts:
//!
//! - a non-zero exit code, not a signal, not 101 (a panic), no "panicked" on stderr;
//! - an error message naming the offending input (the file, flag, tensor or config key);
//! - no partial output: the case directory (which holds every file the case wrote and every
//!   output path it passes) is unchanged — no new, removed or modified file, so no leftover
//!   temporary file either — and nothing on stdout unless the fault is in writing the output.
//!
//! A few positive controls (the good inputs the faults are derived from) must succeed.
//!
//! Every case runs, then one Markdown report lists them all (pass/FAIL, why, the error
//! message) with the counts per command, and the test fails listing every failing case:
//!
//! ```text
//! cargo test -p mrl-cli --test faults -- --nocapture
//! MRL_FAULTS=checkpoint cargo test -p mrl-cli --test faults -- --nocapture   # a subset
//! ```
//!
//! `MRL_FAULTS` keeps the cases whose `command/name` contains any of its comma-separated
//! substrings; `MRL_FAULTS_VERBOSE=1` also prints every case's arguments, stderr and stdout. A full disk is simulated with a file-size limit of 0 bytes (`ulimit -f 0` with
//! `SIGXFSZ` ignored), so every write to a regular file fails (`EFBIG`); `/dev/full` is not
//! used, because an atomic write (temporary sibling, then rename) would replace the device
//! node, which a root process may do.

mod cases;
mod fixtures;
mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{case_table, run_case, summary_table, Cmd, Outcome};
use test_support::TempDir;

/// Upper bound on one case (a hang is a failure, not a stuck CI job).
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Cases run at once (each is a separate process).
const WORKERS: usize = 2;

#[test]
fn every_command_fails_cleanly_on_bad_input() {
    let start = Instant::now();
    let tmp = TempDir::new("faults");
    let fx = fixtures::Fixtures::build(&tmp.path().join("fixtures"));
    let fixture_seconds = start.elapsed().as_secs_f64();
    let all = cases::all(&fx);

    // The table itself: at least 100 bad inputs over all five commands, unique names.
    let faults = all.iter().filter(|c| !c.control).count();
    assert!(faults >= 100, "only {faults} fault cases");
    for cmd in Cmd::ALL {
        assert!(
            all.iter().any(|c| c.cmd == cmd && !c.control),
            "no case for {}",
            cmd.name()
        );
    }
    let mut names: Vec<String> = all
        .iter()
        .map(|c| format!("{}/{}", c.cmd.name(), c.name))
        .collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate case names");

    let filter: Vec<String> = std::env::var("MRL_FAULTS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let selected: Vec<(usize, &harness::Case)> = all
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let id = format!("{}/{}", c.cmd.name(), c.name);
            filter.is_empty() || filter.iter().any(|f| id.contains(f.as_str()))
        })
        .collect();
    assert!(
        !selected.is_empty(),
        "MRL_FAULTS={filter:?} selects no case"
    );

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(index, case)) = selected.get(i) else {
                    break;
                };
                let dir = tmp.path().join(format!("case-{index:03}"));
                let outcome = run_case(case, &dir, &fx, CASE_TIMEOUT);
                let _ = std::fs::remove_dir_all(&dir);
                results.lock().unwrap().push((index, outcome));
            });
        }
    });
    // The `/dev/full` cases must have written to the device, not replaced it with a file.
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata("/dev/full") {
        use std::os::unix::fs::FileTypeExt;
        assert!(
            meta.file_type().is_char_device(),
            "/dev/full is no longer a device: an output was renamed over it"
        );
    }
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<Outcome> = results.into_iter().map(|(_, o)| o).collect();

    let slowest = outcomes
        .iter()
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .map(|o| format!("{}/{} {:.1} s", o.cmd.name(), o.name, o.seconds))
        .unwrap_or_default();
    println!(
        "\n## Fault cases\n\n{}\n## Counts\n\n{}\nfixtures {fixture_seconds:.1} s, {} cases in \
         {:.1} s (slowest: {slowest})\n",
        case_table(&outcomes),
        summary_table(&outcomes),
        outcomes.len(),
        start.elapsed().as_secs_f64() - fixture_seconds,
    );
    let failing: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "{}/{}{}: {}",
                o.cmd.name(),
                o.name,
                if o.control { " (control)" } else { "" },
                o.problems.join("; ")
            )
        })
        .collect();
    assert!(
        failing.is_empty(),
        "{} of {} cases fail:\n{}",
        failing.len(),
        outcomes.len(),
        failing.join("\n")
    );
}
