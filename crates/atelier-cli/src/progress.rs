//! Progress bars on stderr, shown only to a person: never with `--json` and never when stderr
//! is not a terminal (logs, CI, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Creates a bar for `len` steps, or a hidden one when no person is watching.
pub fn bar(len: u64, what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg:>10} [{bar:32}] {pos}/{len} ({per_sec}, eta {eta}) {prefix}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Draws training and feature-extraction progress: one bar per phase with the running loss,
/// and one line per finished epoch (also when no terminal is attached, so logs show them).
pub struct TrainProgress {
    json: bool,
    bar: Option<ProgressBar>,
}

impl TrainProgress {
    pub fn new(json: bool) -> Self {
        Self { json, bar: None }
    }
}

impl atelier_train::progress::Observer for TrainProgress {
    fn phase(&mut self, name: &str, total: u64) {
        self.bar = Some(bar(total, name, self.json));
    }

    fn advance(&mut self, done: u64, loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if let Some(loss) = loss {
                bar.set_prefix(format!("loss {loss:.4}"));
            }
        }
    }

    fn epoch_end(&mut self, record: &atelier_train::progress::EpochRecord) {
        if self.json {
            return;
        }
        let validation = record
            .validation_macro_f1
            .map_or(String::new(), |f1| format!(", validation macro-F1 {f1:.3}"));
        let line = format!(
            "epoch {:>3}: loss {:.4}, lr {:.2e}{validation} ({:.1} s)",
            record.epoch, record.train_loss, record.learning_rate, record.seconds
        );
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn phase_end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
