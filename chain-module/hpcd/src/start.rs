//! `hpcd start`: the ABCI server, the gRPC server and, unless `--abci-only`, the
//! `cometbft` process it supervises — one command runs a node.

use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hpc_state::App;
use hpc_store::Storage;
use tokio::process::Command;

use crate::abci::Node;
use crate::abci_server;
use crate::config::{AbciListen, Home, Settings};
use crate::grpc;

pub struct StartOptions {
    pub abci_only: bool,
    pub cometbft_binary: Option<String>,
}

/// The ABCI server task (it only ends on an accept error).
type AbciTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Waits until the ABCI server accepts connections, so CometBFT never starts first; fails
/// at once with the server's own error if it could not listen (e.g. permission denied).
async fn wait_for_listener(
    listen: &AbciListen,
    home: &Home,
    abci_task: &mut AbciTask,
) -> anyhow::Result<()> {
    for _ in 0..100 {
        let up = match listen {
            AbciListen::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
            AbciListen::Unix(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
        };
        if up {
            return Ok(());
        }
        if abci_task.is_finished() {
            let error = match abci_task.await {
                Ok(Ok(())) => "the server stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            return Err(abci_address_error(listen, home, &error));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the ABCI server did not start listening on {listen}")
}

/// Why hpcd cannot serve ABCI on `proxy_app`, naming the setting and its file.
fn abci_address_error(listen: &AbciListen, home: &Home, detail: &str) -> anyhow::Error {
    anyhow!(
        "cannot listen on the ABCI address {listen} (proxy_app in {}): {detail}",
        home.comet_toml().display()
    )
}

/// Fails clearly if the ABCI address is taken (CometBFT would otherwise connect to
/// whatever already listens there); removes a unix socket a crashed hpcd left behind, but
/// never any other kind of file.
fn claim_abci_address(listen: &AbciListen, home: &Home) -> anyhow::Result<()> {
    let cannot = |e: String| abci_address_error(listen, home, &e);
    let taken = |e: String| cannot(format!("{e}; is another hpcd running?"));
    match listen {
        AbciListen::Tcp(addr) => {
            std::net::TcpListener::bind(addr).map_err(|e| taken(e.to_string()))?;
        }
        AbciListen::Unix(path) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(taken("a process is serving it".into()));
            }
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
                    .map_err(|e| cannot(format!("removing the stale socket: {e}")))?,
                Ok(_) => {
                    return Err(cannot(format!(
                        "{} exists and is not a socket; hpcd removes only a stale socket, \
                         so set proxy_app to another path or move that file away",
                        path.display()
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(cannot(format!("inspecting {}: {e}", path.display()))),
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| cannot(format!("creating {}: {e}", dir.display())))?;
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn start(home: &Home, settings: &Settings, opts: StartOptions) -> anyhow::Result<()> {
    let comet = home.comet_addresses()?;
    let storage = Storage::open_with_cache(&home.state_db(), settings.store_cache_bytes)
        .with_context(|| {
            format!(
                "opening {} (is another hpcd using this home?)",
                home.state_db().display()
            )
        })?
        .with_keep_recent(settings.keep_recent);
    let node = Node::new(
        storage,
        App::new(settings.min_gas_prices.clone()),
        settings.event_index.clone(),
    );
    let (height, app_hash) = node.last_commit();
    tracing::info!(height, app_hash = %hex::encode_upper(&app_hash), home = %home.0.display(), "opened application state");
    if height == 0 {
        // CometBFT would hand this genesis to InitChain; refuse a bad one before starting it.
        crate::genesis::check(&home.genesis(), &node.app)?;
    }

    claim_abci_address(&comet.abci_listen, home)?;
    let listen = comet.abci_listen.clone();
    let abci_node = node.clone();
    let mut abci_task: AbciTask = tokio::spawn(async move {
        match listen {
            AbciListen::Tcp(addr) => abci_server::listen_tcp(&addr, abci_node).await,
            AbciListen::Unix(path) => abci_server::listen_unix(&path, abci_node).await,
        }
    });
    wait_for_listener(&comet.abci_listen, home, &mut abci_task).await?;
    tracing::info!(address = %comet.abci_listen, "ABCI server listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut grpc_task = match settings.grpc {
        Some(addr) => {
            let rpc = tendermint_rpc::HttpClient::new(comet.rpc_url.as_str()).map_err(|e| {
                let e = hpc_client::error::rpc_error_text(&e);
                anyhow!("CometBFT rpc.laddr {}: {e}", comet.rpc_url)
            })?;
            let handler = grpc::Handler::new(node.clone(), rpc);
            let mut stop = stop_rx.clone();
            tracing::info!(address = %addr, "gRPC server listening");
            Some(tokio::spawn(async move {
                grpc::serve(addr, handler, async move {
                    let _ = stop.changed().await;
                })
                .await
            }))
        }
        None => None,
    };
    let grpc_done = async {
        match grpc_task.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };

    let mut child = if opts.abci_only {
        tracing::info!("--abci-only: waiting for a separately run CometBFT to connect");
        None
    } else {
        let binary = opts
            .cometbft_binary
            .clone()
            .unwrap_or_else(|| settings.cometbft_binary.clone());
        let mut command = Command::new(&binary);
        command
            .args(["start", "--home"])
            .arg(&home.0)
            .kill_on_drop(true);
        // If hpcd dies without cleaning up (SIGKILL, crash), take cometbft down with it
        // rather than leaving a consensus engine without its application.
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        #[allow(unsafe_code)] // process control through libc, see SAFETY
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| {
                format!("cannot run cometbft binary {binary:?}; install it with scripts/install-cometbft.sh, or set cometbft.binary in app.toml / --cometbft-bin")
            })?;
        tracing::info!(pid = child.id(), binary = %binary, rpc = %comet.rpc_url, "started cometbft");
        Some(child)
    };
    let child_exit = async {
        match child.as_mut() {
            Some(c) => c.wait().await,
            None => std::future::pending().await,
        }
    };

    let result = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
        status = child_exit => Err(anyhow!("cometbft exited ({}); see its log above", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))),
        res = &mut abci_task => Err(anyhow!("ABCI server stopped: {:?}", res)),
        res = grpc_done => Err(anyhow!("gRPC server stopped: {:?}", res)),
    };
    let _ = stop_tx.send(true);
    if let Some(mut child) = child {
        stop_child(&mut child).await;
    }
    abci_task.abort();
    drop(node);
    result
}

/// SIGTERM, then SIGKILL after a grace period, so CometBFT can flush its stores.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        #[allow(unsafe_code)] // process control through libc, see SAFETY
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            tracing::warn!("cometbft did not stop within 15s; killing it");
            let _ = child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_home() -> (tempfile::TempDir, Home, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home(dir.path().to_path_buf());
        let socket = dir.path().join("data").join("abci.sock");
        (dir, home, socket)
    }

    #[test]
    fn claiming_a_unix_address_never_removes_a_file_that_is_not_a_socket() {
        let (_d, home, path) = unix_home();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "important").unwrap();
        let err = claim_abci_address(&AbciListen::Unix(path.clone()), &home)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(proxy_app in ")
                && err.contains(&home.comet_toml().display().to_string())
                && err.contains(&format!("{} exists and is not a socket", path.display())),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "important");
    }

    #[test]
    fn claiming_a_unix_address_removes_a_stale_socket_but_not_a_served_one() {
        let (_d, home, path) = unix_home();
        let listen = AbciListen::Unix(path.clone());
        claim_abci_address(&listen, &home).unwrap(); // creates data/
        let served = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = claim_abci_address(&listen, &home).unwrap_err().to_string();
        assert!(err.contains("a process is serving it"), "{err}");
        drop(served); // the socket file stays behind, as after a crash
        assert!(path.exists());
        claim_abci_address(&listen, &home).unwrap();
        assert!(!path.exists());
    }
}
