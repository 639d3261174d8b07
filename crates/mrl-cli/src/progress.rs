//! Progress bars on stderr (hidden automatically when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` items, labelled `what`.
pub fn bar(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("a valid progress template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// The training progress bar (or, when stderr is not a terminal, a line every 10 % of the
/// steps): the step's loss line, the learning rate, the gradient norm and, when the task
/// counts them, items per second; evaluations and checkpoints are printed above it.
pub struct TrainProgress<E> {
    bar: Option<ProgressBar>,
    every: usize,
    start: std::time::Instant,
    items: usize,
    items_name: Option<&'static str>,
    summarize: fn(&training::StepReport) -> String,
    describe_eval: fn(usize, &E) -> String,
}

impl<E> TrainProgress<E> {
    /// `summarize` makes the loss part of a step's line, `describe_eval` the line of an
    /// evaluation; `items_name` (e.g. `"tokens"`) adds a throughput.
    pub fn new(
        summarize: fn(&training::StepReport) -> String,
        describe_eval: fn(usize, &E) -> String,
        items_name: Option<&'static str>,
    ) -> Self {
        Self {
            bar: None,
            every: 1,
            start: std::time::Instant::now(),
            items: 0,
            items_name,
            summarize,
            describe_eval,
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn print(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl<E> training::TrainObserver<E> for TrainProgress<E> {
    fn on_start(&mut self, step: usize, total: usize) {
        self.every = (total / 10).max(1);
        self.start = std::time::Instant::now();
        let bar = ProgressBar::new(total as u64);
        if bar.is_hidden() {
            return;
        }
        bar.set_style(
            ProgressStyle::with_template(
                "train [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
            )
            .expect("a valid progress template"),
        );
        bar.set_position(step as u64);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn on_step(&mut self, report: &training::StepReport) {
        self.items += report.items;
        let mut line = format!(
            "{} lr {:.2e} |g| {:.2}",
            (self.summarize)(report),
            report.lr,
            report.grad_norm
        );
        if let Some(name) = self.items_name {
            let rate = self.items as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            line.push_str(&format!(" {rate:.0} {name}/s"));
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(report.step as u64);
                bar.set_message(line);
            }
            None if report.step.is_multiple_of(self.every) || report.step == report.total_steps => {
                eprintln!(
                    "step {}/{} ({:.0} s): {line}",
                    report.step,
                    report.total_steps,
                    self.start.elapsed().as_secs_f64()
                );
            }
            None => {}
        }
    }

    fn on_eval(&mut self, step: usize, eval: &E) {
        self.print((self.describe_eval)(step, eval));
    }

    fn on_checkpoint(&mut self, step: usize, dir: &std::path::Path) {
        self.print(format!("checkpoint after {step} steps: {}", dir.display()));
    }
}
