//! What the bench binaries share: the machine-readable figures `scripts/bench.sh` gathers
//! into `docs/benchmarks/summary.json`.

pub mod summary {
    use std::io::Write;
    use std::path::Path;

    /// One benchmark figure with the baseline measured in the same run.
    #[derive(Debug, serde::Serialize)]
    pub struct Figure {
        pub name: String,
        pub value: f64,
        pub unit: String,
        /// What the value is compared with, measured in the same run.
        pub baseline_name: String,
        pub baseline: f64,
        /// value / baseline.
        pub ratio: f64,
        /// The goal this figure is checked against (issue 12), in words.
        pub goal: String,
        /// The command that produced it.
        pub command: String,
    }

    impl Figure {
        pub fn new(name: &str, value: f64, unit: &str, baseline_name: &str, baseline: f64) -> Self {
            Self {
                name: name.into(),
                value,
                unit: unit.into(),
                baseline_name: baseline_name.into(),
                baseline,
                ratio: if baseline != 0.0 {
                    value / baseline
                } else {
                    f64::NAN
                },
                goal: String::new(),
                command: std::env::args().collect::<Vec<_>>().join(" "),
            }
        }

        pub fn goal(mut self, goal: &str) -> Self {
            self.goal = goal.into();
            self
        }
    }

    /// Appends `figures` to `path` as JSON lines (the suite merges them).
    pub fn append(path: &Path, figures: &[Figure]) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for figure in figures {
            writeln!(
                file,
                "{}",
                serde_json::to_string(figure).map_err(std::io::Error::other)?
            )?;
        }
        Ok(())
    }
}
