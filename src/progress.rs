//! Progress of a long command line operation (`jidgate reconcile` on a
//! large fleet): a bar with rate and ETA when standard error is a
//! terminal, plain lines (at most one a second, and the last) otherwise, so
//! that logs and pipes stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Counts steps done (and failed) out of a known total.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    last_line: Option<Instant>,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new(what: &'static str, total: u64) -> Progress {
        Self::with(what, total, std::io::stderr().is_terminal())
    }

    fn with(what: &'static str, total: u64, terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            total,
            done: 0,
            failed: 0,
            started: Instant::now(),
            last_line: None,
        }
    }

    /// `n` steps over, none failed.
    pub fn advance(&mut self, n: u64) {
        if n > 0 {
            self.done += n - 1;
            self.step(true);
        }
    }

    /// One step over; `ok` false if it failed.
    pub fn step(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done);
                if !ok {
                    bar.set_message(format!("{} ({} failed)", self.what, self.failed));
                }
            }
            None => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if due || self.done == self.total {
                    self.last_line = Some(Instant::now());
                    eprintln!("{}", self.line());
                }
            }
        }
    }

    /// `reconcile: 40/100 (2 failed), 12.5/s, eta 5s`.
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 {
            (left as f64 / rate).ceil() as u64
        } else {
            0
        };
        format!(
            "{}: {}/{} ({} failed), {rate:.1}/s, eta {eta}s",
            self.what, self.done, self.total, self.failed
        )
    }

    /// Clears the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_count_done_failed_and_total() {
        let mut p = Progress::with("reconcile", 3, false);
        p.step(true);
        p.step(false);
        let line = p.line();
        assert!(line.starts_with("reconcile: 2/3 (1 failed), "), "{line}");
        assert!(line.contains("/s, eta "), "{line}");
        p.step(true);
        assert!(p.line().contains("eta 0s"));
        let mut q = Progress::with("drift", 400, false);
        q.advance(200);
        assert!(q.line().starts_with("drift: 200/400 (0 failed)"));
        q.finish();
        p.finish();
    }
}
