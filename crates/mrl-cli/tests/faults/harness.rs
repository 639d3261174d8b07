//! The case type, the runner and the checks every fault case must pass.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::Fixtures;

/// The `mrl` subcommand a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cmd {
    Eval,
    Encode,
    Generate,
    Train,
    Distill,
}

impl Cmd {
    pub const ALL: [Cmd; 5] = [
        Cmd::Eval,
        Cmd::Encode,
        Cmd::Generate,
        Cmd::Train,
        Cmd::Distill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cmd::Eval => "eval",
            Cmd::Encode => "encode",
            Cmd::Generate => "generate",
            Cmd::Train => "train",
            Cmd::Distill => "distill",
        }
    }
}

/// What a case's `prepare` gets: its own empty directory and the shared fixtures.
pub struct Ctx<'a> {
    pub dir: PathBuf,
    pub fx: &'a Fixtures,
}

impl Ctx<'_> {
    /// `<case dir>/<name>` as a string argument.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Writes `bytes` to `<case dir>/<name>` (parents created) and returns the path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }
}

type Prepare = Box<dyn Fn(&Ctx) -> Vec<String> + Send + Sync>;

/// One generated bad input (or, with `control`, a good one that must succeed).
pub struct Case {
    pub cmd: Cmd,
    pub name: String,
    /// Writes the case's files into its directory and returns the arguments after the
    /// subcommand name.
    pub prepare: Prepare,
    /// Substrings the error message must contain (each of them): the offending file, flag,
    /// tensor or key; `{case}` stands for the case directory.
    pub expect: Vec<String>,
    /// Substrings the error message must not contain (e.g. clap's "unexpected argument" for a
    /// negative number, which names no flag).
    pub forbid: Vec<String>,
    /// Run with a file-size limit of 0 bytes (`ulimit -f 0`, `SIGXFSZ` ignored): every write to
    /// a regular file fails, as on a full disk.
    pub full_disk: bool,
    /// The fault is in writing the output: results may already be on stdout.
    pub output_fault: bool,
    /// A positive control: must exit 0 (proves the fixtures the faults are derived from work).
    pub control: bool,
}

impl Case {
    pub fn new(
        cmd: Cmd,
        name: &str,
        prepare: impl Fn(&Ctx) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            cmd,
            name: name.to_string(),
            prepare: Box::new(prepare),
            expect: Vec::new(),
            forbid: Vec::new(),
            full_disk: false,
            output_fault: false,
            control: false,
        }
    }

    /// The message must name `what`.
    pub fn names(mut self, what: impl Into<String>) -> Self {
        self.expect.push(what.into());
        self
    }

    /// A bad value of `flag`: the message names the flag and is not clap's "unexpected
    /// argument" (what clap says for a negative number it takes for a flag).
    pub fn flag(self, flag: &str) -> Self {
        self.names(flag).forbids("unexpected argument")
    }

    pub fn forbids(mut self, what: &str) -> Self {
        self.forbid.push(what.to_string());
        self
    }

    pub fn full_disk(mut self) -> Self {
        self.full_disk = true;
        self.output_fault = true;
        self
    }

    pub fn output_fault(mut self) -> Self {
        self.output_fault = true;
        self
    }

    pub fn control(mut self) -> Self {
        self.control = true;
        self
    }
}

/// The outcome of one case.
pub struct Outcome {
    pub cmd: Cmd,
    pub name: String,
    pub control: bool,
    /// Why the case failed; empty = passed.
    pub problems: Vec<String>,
    /// The first lines of stderr (for the table).
    pub message: String,
    pub seconds: f64,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every file and directory under `dir`: relative path → (length, FNV-1a of the content);
/// directories as `None`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<(u64, u64)>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<(u64, u64)>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for &b in &bytes {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
                out.insert(rel, Some((meta.len(), h)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What changed in the case directory: new, removed and modified paths.
fn tree_changes(
    before: &BTreeMap<PathBuf, Option<(u64, u64)>>,
    after: &BTreeMap<PathBuf, Option<(u64, u64)>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, state) in after {
        match before.get(path) {
            None => out.push(format!("new {}", path.display())),
            Some(old) if old != state => out.push(format!("modified {}", path.display())),
            _ => {}
        }
    }
    for path in before.keys() {
        if !after.contains_key(path) {
            out.push(format!("removed {}", path.display()));
        }
    }
    out
}

/// The error message without clap's usage lines (they list every required flag, so a flag
/// named there is not a flag named by the error).
fn message_part(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("Usage:") && !t.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `mrl` with a deadline, reading both pipes to the end.
fn run_mrl(
    fx: &Fixtures,
    args: &[String],
    full_disk: bool,
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    let bin = env!("CARGO_BIN_EXE_mrl");
    let mut command = if full_disk {
        // A shell that ignores SIGXFSZ (inherited through exec) and caps file sizes at 0
        // bytes: any write to a regular file then fails with EFBIG.
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("trap '' XFSZ; ulimit -f 0 && exec \"$0\" \"$@\"")
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    command
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", fx.root.join("hf-home"))
        .env_remove("HF_HUB_CACHE")
        .env("MRL_SHARED", fx.root.join("shared"))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn mrl");
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mrl") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Runs one case in `dir` (created empty) and checks it.
pub fn run_case(case: &Case, dir: &Path, fx: &Fixtures, timeout: Duration) -> Outcome {
    std::fs::create_dir_all(dir).unwrap();
    let ctx = Ctx {
        dir: dir.to_path_buf(),
        fx,
    };
    let mut args = vec![case.cmd.name().to_string()];
    args.extend((case.prepare)(&ctx));
    let before = snapshot(dir);
    let start = Instant::now();
    let (status, stdout, stderr) = run_mrl(fx, &args, case.full_disk, timeout);
    let seconds = start.elapsed().as_secs_f64();
    let mut problems = Vec::new();
    let message = message_part(&stderr);
    match status {
        None => problems.push(format!("timed out after {} s", timeout.as_secs())),
        Some(s) if case.control => {
            if !s.success() {
                problems.push(format!("control failed with {s}"));
            }
        }
        Some(s) => {
            match s.code() {
                None => problems.push(format!("killed by a signal ({s})")),
                Some(0) => problems.push("exit 0".into()),
                Some(101) => problems.push("exit 101 (panic)".into()),
                Some(_) => {}
            }
            if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
                problems.push("panicked".into());
            }
            for want in &case.expect {
                let want = want.replace("{case}", &dir.display().to_string());
                if !message.contains(want.as_str()) {
                    problems.push(format!("does not name `{want}`"));
                }
            }
            for bad in &case.forbid {
                if message.contains(bad.as_str()) {
                    problems.push(format!("says `{bad}`"));
                }
            }
            let changes = tree_changes(&before, &snapshot(dir));
            if !changes.is_empty() {
                problems.push(format!("left output: {}", changes.join(", ")));
            }
            if !case.output_fault && !stdout.trim().is_empty() {
                problems.push(format!(
                    "printed to stdout: {}",
                    first_line(&stdout).unwrap_or_default()
                ));
            }
        }
    }
    if std::env::var_os("MRL_FAULTS_VERBOSE").is_some() {
        println!(
            "--- {}/{}: {status:?}\n{}\nstderr:\n{stderr}\nstdout:\n{stdout}",
            case.cmd.name(),
            case.name,
            args.join(" ")
        );
    }
    Outcome {
        cmd: case.cmd,
        name: case.name.clone(),
        control: case.control,
        problems,
        message: error_lines(&stderr),
        seconds,
    }
}

fn first_line(s: &str) -> Option<String> {
    s.lines().find(|l| !l.trim().is_empty()).map(str::to_string)
}

/// The `error:` line(s) of stderr (else its last non-empty line), for the table.
fn error_lines(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error") || l.contains("panicked"))
        .collect();
    if errors.is_empty() {
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    } else {
        errors.join(" / ")
    }
}

/// A Markdown table cell: one line, pipes escaped, at most `max` characters.
fn cell(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ").replace('|', "\\|");
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// The per-command counts as a Markdown table.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut out =
        String::from("| command | fault cases | passed | failed |\n|---|---:|---:|---:|\n");
    let (mut total, mut passed) = (0, 0);
    for cmd in Cmd::ALL {
        let of: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.cmd == cmd && !o.control)
            .collect();
        let ok = of.iter().filter(|o| o.passed()).count();
        total += of.len();
        passed += ok;
        out.push_str(&format!(
            "| {} | {} | {ok} | {} |\n",
            cmd.name(),
            of.len(),
            of.len() - ok
        ));
    }
    out.push_str(&format!(
        "| **total** | **{total}** | **{passed}** | **{}** |\n",
        total - passed
    ));
    out
}

/// Every case as a Markdown table row: result, why it failed, and the error message.
pub fn case_table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| command | case | result | problems | error message |\n|---|---|---|---|---|\n",
    );
    for o in outcomes {
        out.push_str(&format!(
            "| {} | {}{} | {} | {} | {} |\n",
            o.cmd.name(),
            o.name,
            if o.control { " (control)" } else { "" },
            if o.passed() { "pass" } else { "FAIL" },
            cell(&o.problems.join("; "), 160),
            cell(&o.message, 200),
        ));
    }
    out
}
