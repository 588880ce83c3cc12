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

/// Deterministic bench accounts: the same key for index i in every binary and run.
pub mod accounts {
    use cosmrs::crypto::secp256k1::SigningKey;
    use sha2::{Digest, Sha256};

    pub fn key(i: usize) -> SigningKey {
        let secret = Sha256::digest(format!("hpc-bench-account-{i}").as_bytes());
        SigningKey::from_slice(&secret).expect("a SHA-256 digest is a valid secp256k1 secret")
    }
}

/// Signed x/hpc txs the benchmarks send.
pub mod txs {
    use cosmrs::crypto::secp256k1::SigningKey;
    use hpc_client::tx::{address_of, sign_tx, to_any, SignerAccount};
    use hpc_primitives::Coins;
    use hpc_proto::virtengine::hpc::v1::{
        job_workload, JobRequirements, JobWorkload, MsgSubmitJob,
    };

    /// What a SubmitJob tx pays: its gas limit and its fee in uvirt.
    #[derive(Clone, Copy, Debug)]
    pub struct Fee {
        pub gas_limit: u64,
        pub uvirt: u128,
    }

    /// A signed SubmitJob of one node for `max_runtime_seconds` running `script` inline,
    /// on a cluster in one of `allowed_regions` (any region when empty).
    pub fn submit_job(
        owner_key: &SigningKey,
        chain_id: &str,
        account: &SignerAccount,
        script: &[u8],
        max_runtime_seconds: u64,
        allowed_regions: &[&str],
        fee: Fee,
    ) -> Vec<u8> {
        let msg = to_any(&MsgSubmitJob {
            owner: address_of(owner_key).to_string(),
            requirements: Some(JobRequirements {
                nodes: 1,
                max_runtime_seconds,
                allowed_regions: allowed_regions.iter().map(|r| r.to_string()).collect(),
                ..Default::default()
            }),
            workload: Some(JobWorkload {
                source: Some(job_workload::Source::InlineScript(script.to_vec())),
                ..Default::default()
            }),
            ..Default::default()
        });
        sign_tx(
            owner_key,
            chain_id,
            account,
            vec![msg],
            "",
            0,
            &Coins::single("uvirt", fee.uvirt),
            fee.gas_limit,
            false,
        )
        .expect("a bench tx always signs")
    }
}

/// Readings of running processes and their files (Linux /proc).
pub mod proc {
    use std::path::Path;

    /// CPU seconds (user + system) of a process's children it has waited for (their
    /// children included), from /proc/PID/stat (USER_HZ = 100).
    pub fn reaped_children_cpu_secs(pid: u32) -> Option<f64> {
        stat_secs(pid, 13, 14)
    }

    /// CPU seconds (user + system) a process has used, from /proc/PID/stat (USER_HZ = 100).
    pub fn cpu_secs(pid: u32) -> Option<f64> {
        stat_secs(pid, 11, 12)
    }

    /// The sum of two clock-tick fields of /proc/PID/stat (counted after the command name),
    /// in seconds.
    fn stat_secs(pid: u32, first: usize, second: usize) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
        let user: f64 = fields.get(first)?.parse().ok()?;
        let system: f64 = fields.get(second)?.parse().ok()?;
        Some((user + system) / 100.0)
    }

    /// Resident set size of a process in bytes (VmRSS of /proc/PID/status).
    pub fn rss_bytes(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Direct children of a process (hpcd's cometbft).
    pub fn children_of(pid: u32) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|child| {
                std::fs::read_to_string(format!("/proc/{child}/stat"))
                    .ok()
                    .and_then(|s| {
                        let rest = &s[s.rfind(')')? + 2..];
                        rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                    })
                    == Some(pid)
            })
            .collect()
    }

    /// Bytes the files under `path` take on disk (allocated blocks), recursively.
    pub fn disk_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                Ok(m) => m.blocks() * 512,
                Err(_) => 0,
            })
            .sum()
    }
}

pub mod stats {
    /// The p-th percentile (nearest rank) of sorted samples.
    pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
        if sorted.is_empty() {
            return None;
        }
        let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        Some(sorted[idx.min(sorted.len() - 1)])
    }
}
