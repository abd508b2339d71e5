//! The child side: `taskhost __serve-worker` loads the plugins (under the same trust rules and
//! pins as the host) and runs the tasks its host worker sends, one at a time, until the socket
//! closes.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use anyhow::Context;
use taskhost_loader::{PluginSet, TracingContext};

use super::protocol::{FailureCode, Outcome, Request, Response};

/// Serves the host worker at the socket named in the environment, with `plugins` (or tells it
/// why there are none). Returns when the host closes the socket.
pub fn serve(plugins: Result<PluginSet, String>) -> anyhow::Result<()> {
    let path = super::parent::socket_from_env()
        .context("no worker socket: this command is started by the host for an isolated pool")?;
    let socket =
        UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))?;
    let plugins = match plugins {
        Ok(plugins) => plugins,
        Err(error) => {
            send(&socket, &Response::Refused { error })?;
            return Ok(());
        }
    };
    send(
        &socket,
        &Response::Ready {
            pid: std::process::id(),
            tasks: plugins.tasks().count(),
        },
    )?;
    // A reader thread, so that a cancel reaches the task while it runs.
    let running = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, runs) = mpsc::channel();
    let reader = socket.try_clone()?;
    {
        let (running, cancel) = (Arc::clone(&running), Arc::clone(&cancel));
        thread::Builder::new()
            .name("serve-reader".into())
            .spawn(move || {
                let requests =
                    serde_json::Deserializer::from_reader(BufReader::new(reader)).into_iter();
                for request in requests {
                    match request {
                        Ok(Request::Cancel { id }) => {
                            if running.load(Ordering::SeqCst) == id {
                                cancel.store(true, Ordering::SeqCst);
                            }
                        }
                        Ok(run @ Request::Run { .. }) => {
                            if tx.send(run).is_err() {
                                return;
                            }
                        }
                        // The host closed the socket (or broke it): stop serving.
                        Err(_) => return,
                    }
                }
            })?;
    }
    for request in runs {
        let Request::Run { id, task, input } = request else {
            continue;
        };
        cancel.store(false, Ordering::SeqCst);
        running.store(id, Ordering::SeqCst);
        let outcome = match plugins.task(&task) {
            None => Outcome::Failed {
                kind: FailureCode::InvalidInput,
                message: format!("the worker process has no task `{task}`"),
            },
            Some(plugin_task) => {
                let context = TracingContext::new(&plugin_task).with_cancel_flag(&cancel);
                match plugin_task.run(input.as_bytes(), &context) {
                    Ok(output) => Outcome::Ok { output },
                    Err(failure) => Outcome::Failed {
                        kind: FailureCode::from_kind(failure.kind),
                        message: failure.message,
                    },
                }
            }
        };
        running.store(0, Ordering::SeqCst);
        send(&socket, &Response::Done { id, outcome })?;
    }
    Ok(())
}

fn send(socket: &UnixStream, response: &Response) -> anyhow::Result<()> {
    let mut writer = socket;
    serde_json::to_writer(&mut writer, response)?;
    writer.flush()?;
    Ok(())
}
