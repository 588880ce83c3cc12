//! A job's workload made ready to run: the provider's policy applied, a content-addressed
//! script fetched and verified. This happens before the attempt's audit record is written,
//! so a refusal ends the attempt in a REJECTED record with its reason code and nothing
//! reaches the local scheduler.

use std::time::Duration;

use hpc_local_scheduler::Workload;
use hpc_primitives::contract::reason_codes;
use hpc_primitives::contract::workload::{self as rules, sha256_hex, Limits};
use hpc_proto::virtengine::hpc::v1::job_workload::Source;
use hpc_proto::virtengine::hpc::v1::{ContentAddress, Job, JobWorkload};

use crate::config::WorkloadPolicy;

/// Why a workload will not run here: a [`reason_codes`] code and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

fn refuse(code: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

fn policy_refusal(reason: impl Into<String>) -> Refusal {
    refuse(reason_codes::WORKLOAD_POLICY_REFUSED, reason)
}

/// A workload ready for the local scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub workload: Workload,
    pub env: Vec<(String, String)>,
    pub partition: Option<String>,
    pub output_name: String,
}

/// The job's workload checked against the chain's rules (the node is not trusted) and this
/// provider's policy. Pure; the fetch of a content-addressed script comes after.
pub fn check<'a>(job: &'a Job, policy: &WorkloadPolicy) -> Result<&'a JobWorkload, Refusal> {
    let w = job
        .workload
        .as_ref()
        .ok_or_else(|| policy_refusal("the job carries no workload"))?;
    let limits = Limits {
        max_inline_script_bytes: u32::try_from(policy.max_script_bytes).unwrap_or(u32::MAX),
        ..rules::HARD_CAPS
    };
    rules::validate(w, &limits).map_err(|e| policy_refusal(e.to_string()))?;
    let runtime = job
        .requirements
        .as_ref()
        .map_or(0, |r| r.max_runtime_seconds);
    if runtime > policy.max_runtime_seconds {
        return Err(policy_refusal(format!(
            "max_runtime_seconds {runtime} exceeds this provider's limit of {}",
            policy.max_runtime_seconds
        )));
    }
    if !w.partition.is_empty()
        && !policy.allowed_partitions.is_empty()
        && !policy.allowed_partitions.contains(&w.partition)
    {
        return Err(policy_refusal(format!(
            "partition {:?} is not offered here (allowed: {})",
            w.partition,
            policy.allowed_partitions.join(", ")
        )));
    }
    match &w.source {
        Some(Source::ScriptRef(r)) => check_reference(r, policy)?,
        Some(Source::Container(c)) => {
            if policy.container_runtime.is_empty() {
                return Err(policy_refusal(
                    "container workloads are not run by this provider",
                ));
            }
            if !policy.allowed_images.iter().any(|p| c.image.starts_with(p)) {
                return Err(policy_refusal(format!(
                    "image {:?} is not from an allowed registry",
                    c.image
                )));
            }
        }
        Some(Source::InlineScript(_)) | None => {}
    }
    Ok(w)
}

fn check_reference(r: &ContentAddress, policy: &WorkloadPolicy) -> Result<(), Refusal> {
    let scheme = r.uri.split_once("://").map_or("", |(s, _)| s);
    if !policy.allowed_uri_schemes.iter().any(|s| s == scheme) {
        return Err(policy_refusal(format!(
            "URI scheme {scheme:?} is not fetched by this provider (allowed: {})",
            policy.allowed_uri_schemes.join(", ")
        )));
    }
    if r.size_bytes > policy.max_script_bytes {
        return Err(policy_refusal(format!(
            "script of {} bytes exceeds this provider's limit of {}",
            r.size_bytes, policy.max_script_bytes
        )));
    }
    Ok(())
}

/// [`check`], then the script fetched and verified (for a content address).
pub async fn prepare(job: &Job, policy: &WorkloadPolicy) -> Result<Prepared, Refusal> {
    let w = check(job, policy)?;
    let workload = match &w.source {
        Some(Source::InlineScript(bytes)) => Workload::Script {
            bytes: bytes.clone(),
        },
        Some(Source::ScriptRef(r)) => {
            let timeout = Duration::from_secs(policy.fetch_timeout_seconds);
            let bytes = fetch(r, timeout).await?;
            verify(r, &bytes)?;
            let limits = Limits {
                max_inline_script_bytes: u32::try_from(policy.max_script_bytes).unwrap_or(u32::MAX),
                ..rules::HARD_CAPS
            };
            rules::validate_script(&bytes, &limits).map_err(|e| policy_refusal(e.to_string()))?;
            Workload::Script { bytes }
        }
        Some(Source::Container(c)) => Workload::Container {
            image: c.image.clone(),
            command: c.command.clone(),
        },
        None => return Err(policy_refusal("the job carries no workload")),
    };
    Ok(Prepared {
        workload,
        env: w
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect(),
        partition: (!w.partition.is_empty()).then(|| w.partition.clone()),
        output_name: w.output_name.clone(),
    })
}

/// Exactly the addressed bytes: size and digest must both match.
pub fn verify(r: &ContentAddress, bytes: &[u8]) -> Result<(), Refusal> {
    if bytes.len() as u64 != r.size_bytes {
        return Err(refuse(
            reason_codes::WORKLOAD_DIGEST_MISMATCH,
            format!(
                "{} served {} bytes, the job names {}",
                r.uri,
                bytes.len(),
                r.size_bytes
            ),
        ));
    }
    let digest = sha256_hex(bytes);
    if digest != r.sha256 {
        return Err(refuse(
            reason_codes::WORKLOAD_DIGEST_MISMATCH,
            format!("{} has sha256 {digest}, the job names {}", r.uri, r.sha256),
        ));
    }
    Ok(())
}

/// At most `size_bytes + 1` bytes of the URI (one more than named, so a longer body is
/// detected without reading it all).
async fn fetch(r: &ContentAddress, timeout: Duration) -> Result<Vec<u8>, Refusal> {
    let failed = |e: String| {
        refuse(
            reason_codes::WORKLOAD_FETCH_FAILED,
            format!("fetching {}: {e}", r.uri),
        )
    };
    let cap = r.size_bytes.saturating_add(1);
    let read = async {
        if let Some(path) = r.uri.strip_prefix("file://") {
            read_file(path, cap).await
        } else {
            read_http(&r.uri, cap).await
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| failed(format!("no answer within {} s", timeout.as_secs())))?
        .map_err(failed)
}

async fn read_file(path: &str, cap: u64) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(cap)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// One HTTP client for every fetch: building one loads the system's root certificates.
fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

async fn read_http(uri: &str, cap: u64) -> Result<Vec<u8>, String> {
    let mut response = http_client()?
        .get(uri)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .error_for_status()
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 >= cap {
            bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
            break;
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpc_proto::virtengine::hpc::v1::{ContainerWorkload, EnvVar, JobRequirements};

    const SCRIPT: &[u8] = b"#!/bin/sh\necho hi\n";

    fn job(source: Source) -> Job {
        Job {
            job_id: "hpc-job-1".into(),
            requirements: Some(JobRequirements {
                nodes: 1,
                max_runtime_seconds: 60,
                ..Default::default()
            }),
            workload: Some(JobWorkload {
                source: Some(source),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn reference(uri: &str, bytes: &[u8]) -> Source {
        Source::ScriptRef(ContentAddress {
            uri: uri.into(),
            sha256: sha256_hex(bytes),
            size_bytes: bytes.len() as u64,
        })
    }

    fn code(r: Result<&JobWorkload, Refusal>) -> &'static str {
        r.err().map_or("ok", |e| e.code)
    }

    #[test]
    fn the_policy_table() {
        let policy = WorkloadPolicy {
            allowed_partitions: vec!["debug".into()],
            max_runtime_seconds: 60,
            ..WorkloadPolicy::default()
        };
        let inline = || job(Source::InlineScript(SCRIPT.to_vec()));
        let with = |f: &dyn Fn(&mut Job)| {
            let mut j = inline();
            f(&mut j);
            j
        };
        let refused = reason_codes::WORKLOAD_POLICY_REFUSED;
        let cases: Vec<(&str, Job, &str)> = vec![
            ("inline script", inline(), "ok"),
            ("no workload", with(&|j| j.workload = None), refused),
            (
                "runtime above the provider's limit",
                with(&|j| j.requirements.as_mut().unwrap().max_runtime_seconds = 61),
                refused,
            ),
            (
                "allowed partition",
                with(&|j| j.workload.as_mut().unwrap().partition = "debug".into()),
                "ok",
            ),
            (
                "other partition",
                with(&|j| j.workload.as_mut().unwrap().partition = "gpu".into()),
                refused,
            ),
            (
                "reserved env name (a hostile node could serve one)",
                with(&|j| {
                    j.workload.as_mut().unwrap().env = vec![EnvVar {
                        name: "HPC_JOB_ID".into(),
                        value: "x".into(),
                    }]
                }),
                refused,
            ),
            (
                "https reference",
                job(reference("https://h/s.sh", SCRIPT)),
                "ok",
            ),
            (
                "file reference, not allowed",
                job(reference("file:///tmp/s.sh", SCRIPT)),
                refused,
            ),
            (
                "container without a runtime",
                job(Source::Container(ContainerWorkload {
                    image: "registry.example/app".into(),
                    command: vec![],
                })),
                refused,
            ),
        ];
        for (name, j, want) in cases {
            assert_eq!(code(check(&j, &policy)), want, "{name}");
        }
        let big = job(Source::ScriptRef(ContentAddress {
            uri: "https://h/s".into(),
            sha256: sha256_hex(SCRIPT),
            size_bytes: policy.max_script_bytes + 1,
        }));
        assert_eq!(
            code(check(&big, &policy)),
            refused,
            "reference above max_script_bytes"
        );
    }

    #[test]
    fn containers_only_from_allowed_registries() {
        let policy = WorkloadPolicy {
            allowed_images: vec!["registry.example/".into()],
            container_runtime: vec!["docker".into(), "run".into(), "--rm".into()],
            ..WorkloadPolicy::default()
        };
        let image = |image: &str| {
            job(Source::Container(ContainerWorkload {
                image: image.into(),
                command: vec!["true".into()],
            }))
        };
        assert_eq!(code(check(&image("registry.example/app:1"), &policy)), "ok");
        assert_eq!(
            code(check(&image("evil.example/app:1"), &policy)),
            reason_codes::WORKLOAD_POLICY_REFUSED
        );
    }

    #[tokio::test]
    async fn a_hostile_http_server_cannot_stall_or_flood_the_fetch() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Connection 1 answers 200 with a body that never ends; connection 2 never answers.
        tokio::spawn(async move {
            let (mut flood, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut flood, &mut request).await;
            let _ = flood
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                .await;
            let chunk = vec![b'#'; 64 * 1024];
            while flood.write_all(&chunk).await.is_ok() {}
            let (_silent, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let policy = WorkloadPolicy {
            allowed_uri_schemes: vec!["http".into()],
            fetch_timeout_seconds: 2,
            ..WorkloadPolicy::default()
        };
        let uri = format!("http://{addr}/job.sh");
        let flooded = prepare(&job(reference(&uri, SCRIPT)), &policy)
            .await
            .unwrap_err();
        assert_eq!(
            flooded.code,
            reason_codes::WORKLOAD_DIGEST_MISMATCH,
            "{}",
            flooded.reason
        );
        let started = std::time::Instant::now();
        let stalled = prepare(&job(reference(&uri, SCRIPT)), &policy)
            .await
            .unwrap_err();
        assert_eq!(stalled.code, reason_codes::WORKLOAD_FETCH_FAILED);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_fetched_script_must_match_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sh");
        std::fs::write(&path, SCRIPT).unwrap();
        let policy = WorkloadPolicy {
            allowed_uri_schemes: vec!["file".into()],
            ..WorkloadPolicy::default()
        };
        let uri = format!("file://{}", path.display());
        let ok = prepare(&job(reference(&uri, SCRIPT)), &policy)
            .await
            .unwrap();
        assert_eq!(
            ok.workload,
            Workload::Script {
                bytes: SCRIPT.to_vec()
            }
        );
        // Same size, other content; longer content; a missing file.
        let other = b"#!/bin/sh\necho ho\n";
        let mismatch = prepare(&job(reference(&uri, other)), &policy)
            .await
            .unwrap_err();
        assert_eq!(mismatch.code, reason_codes::WORKLOAD_DIGEST_MISMATCH);
        let shorter = &SCRIPT[..SCRIPT.len() - 1];
        let longer = prepare(&job(reference(&uri, shorter)), &policy)
            .await
            .unwrap_err();
        assert_eq!(longer.code, reason_codes::WORKLOAD_DIGEST_MISMATCH);
        let gone = format!("file://{}/missing.sh", dir.path().display());
        let missing = prepare(&job(reference(&gone, SCRIPT)), &policy)
            .await
            .unwrap_err();
        assert_eq!(missing.code, reason_codes::WORKLOAD_FETCH_FAILED);
    }

    #[tokio::test]
    async fn an_unreachable_uri_is_a_fetch_failure() {
        let policy = WorkloadPolicy {
            allowed_uri_schemes: vec!["http".into()],
            fetch_timeout_seconds: 5,
            ..WorkloadPolicy::default()
        };
        // Port 9 (discard) on loopback: nothing listens.
        let r = prepare(&job(reference("http://127.0.0.1:9/s.sh", SCRIPT)), &policy).await;
        assert_eq!(r.unwrap_err().code, reason_codes::WORKLOAD_FETCH_FAILED);
    }
}
