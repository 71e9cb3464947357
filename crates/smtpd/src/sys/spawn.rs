//! The one thread of a process that forks its long-lived children (table backends, filter
//! processes), so that each can die with the process that started it.
//!
//! Such a child asks, between fork and exec, to be killed when its parent dies
//! (`PR_SET_PDEATHSIG`), but the kernel sends that signal when the *thread* that forked it
//! ends, not the process. The threads that want a child do end while it should live on: a
//! tokio worker that ran `block_in_place` may leave the pool afterwards as an idle blocking
//! thread, a reload runs on a blocking-pool thread that leaves when idle. This one waits for
//! work as long as the process lives, and every such fork of the process runs on it.

use std::sync::{mpsc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// The spawn thread's queue, and the process it belongs to: a process forked from this one
/// inherits the static but not the thread, and starts its own.
static SPAWNER: Mutex<Option<(u32, mpsc::Sender<Job>)>> = Mutex::new(None);

/// Runs `fork` (a fork and exec, or anything else that must happen on the thread its children
/// die with) on this process's spawn thread, started with the first call, and returns what it
/// returned. The caller blocks meanwhile: a fork takes a few milliseconds.
pub fn on_spawn_thread<T, F>(fork: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (answer, answered) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = answer.send(fork());
    });
    let gone = || std::io::Error::other("spawn: thread gone");
    {
        let mut s = SPAWNER.lock().map_err(|_| gone())?;
        let me = std::process::id();
        if s.as_ref().is_none_or(|(pid, _)| *pid != me) {
            *s = Some((me, start()?));
        }
        if s.as_ref().is_none_or(|(_, tx)| tx.send(job).is_err()) {
            // It does not end (see `start`); were it gone, the next call starts another.
            *s = None;
            return Err(gone());
        }
    }
    answered.recv().unwrap_or_else(|_| Err(gone()))
}

/// Starts the thread. Its sender is kept in a static, so its queue never closes and the thread
/// never ends; nor does a job that panics end it (its caller gets an error), since its end
/// would kill every child it forked.
fn start() -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("spawn".into())
        .spawn(move || {
            for job in rx {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
    Ok(tx)
}

/// Between fork and exec, after any change of credentials (which clears it): the child is to
/// be killed when the thread that forked it ends (see the module's comment), and exits at once
/// if `parent` is already gone (it then has another parent pid). The setting survives `exec`
/// of anything but a set-uid or set-gid program (`sh -c "exec CMD"` keeps it). Only prctl and
/// getppid, async-signal-safe; ESRCH, an error that allocates nothing.
pub fn die_with(parent: nix::unistd::Pid) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        return Err(nix::errno::Errno::ESRCH.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn where_it_runs() -> Option<(std::thread::ThreadId, Option<String>)> {
        on_spawn_thread(|| {
            let t = std::thread::current();
            Ok((t.id(), t.name().map(str::to_string)))
        })
        .ok()
    }

    #[test]
    fn every_job_runs_on_the_same_thread_whoever_asks() {
        let first = where_it_runs();
        let other = std::thread::spawn(where_it_runs).join().ok().flatten();
        assert_eq!(first.as_ref().and_then(|t| t.1.as_deref()), Some("spawn"));
        assert_eq!(first, other);
        assert_ne!(first.map(|t| t.0), Some(std::thread::current().id()));
    }

    #[test]
    fn a_job_that_panics_costs_only_its_own_answer() {
        let before = where_it_runs();
        let panicked = on_spawn_thread::<(), _>(|| panic!("a job that panics"));
        assert!(panicked.is_err());
        assert_eq!(on_spawn_thread(|| Ok(7)).ok(), Some(7));
        assert_eq!(where_it_runs(), before, "the same thread, still there");
    }
}
