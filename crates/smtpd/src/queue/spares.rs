//! Recycled spool inodes: finished message directories and envelope files parked in `purge/`
//! and renamed back in for the next message, promoted only after a commit barrier (see the
//! queue's module doc for why).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::layout::MESSAGE;
use super::Shared;

/// Finished message directories (holding only their `message` file) and
/// envelope files, parked in `purge/` to be reused instead of freed.
///
/// A parked inode is not reused at once: its old name (`queue/XX/MSGID/...`)
/// may still be on disk, since deletions are not synced. Reused before that
/// rename reached the disk, a crash could leave the old name pointing at the
/// new message's content. So a spare waits in `pending` until a commit
/// barrier (`syncfs`, which writes every earlier rename) that began after it
/// was parked has completed: the syncfs committer's own, or with the fsync
/// committer one that `commit::run_promoter` makes apart from commits. In
/// [`super::CommitMode::Single`] nothing is parked.
#[derive(Default)]
pub(super) struct Spares {
    pending_dirs: Vec<PathBuf>,
    pending_envs: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    envs: Vec<PathBuf>,
}

/// Enough for the messages a busy queue finishes between two barriers.
const MAX_SPARE_DIRS: usize = 1024;
const MAX_SPARE_ENVS: usize = 4096;

/// What a barrier takes from `pending` when it begins, to promote when it
/// has completed.
#[derive(Default)]
pub(super) struct Promotion {
    dirs: Vec<PathBuf>,
    envs: Vec<PathBuf>,
}

impl Shared {
    /// Parks `path` (a finished message directory or envelope file) in
    /// `purge/` for reuse. False when not parked: the caller frees it.
    pub(super) fn park(&self, path: &Path, dir: bool) -> bool {
        if !self.recycle {
            return false;
        }
        {
            let st = self.state();
            let sp = &st.spares;
            let full = if dir {
                sp.dirs.len() + sp.pending_dirs.len() >= MAX_SPARE_DIRS
            } else {
                sp.envs.len() + sp.pending_envs.len() >= MAX_SPARE_ENVS
            };
            if full {
                return false;
            }
        }
        let n = self.spare_seq.fetch_add(1, Ordering::Relaxed);
        let kind = if dir { "d" } else { "e" };
        let target = self.purge.join(format!("spare.{kind}.{n}"));
        if fs::rename(path, &target).is_err() {
            return false;
        }
        let mut st = self.state();
        if dir {
            st.spares.pending_dirs.push(target);
        } else {
            st.spares.pending_envs.push(target);
        }
        true
    }

    /// A finished message directory: parked if it holds nothing but its
    /// `message` (anything else would be carried into the next message),
    /// else removed.
    pub(super) fn retire_dir(&self, dir: &Path) {
        let only_message = fs::read_dir(dir).is_ok_and(|rd| {
            let mut names = rd.map(|e| e.map(|e| e.file_name()));
            matches!(names.next(), Some(Ok(n)) if n == MESSAGE) && names.next().is_none()
        });
        if !(only_message && self.park(dir, true)) {
            self.remove_tree(dir);
        }
    }

    /// Whether parked spares wait for a barrier.
    pub(super) fn spares_pending(&self) -> bool {
        let st = self.state();
        !(st.spares.pending_dirs.is_empty() && st.spares.pending_envs.is_empty())
    }

    /// Called by the committer as a barrier begins: the spares parked so
    /// far become usable once it completes.
    pub(super) fn barrier_begins(&self) -> Promotion {
        let mut st = self.state();
        Promotion {
            dirs: std::mem::take(&mut st.spares.pending_dirs),
            envs: std::mem::take(&mut st.spares.pending_envs),
        }
    }

    /// The barrier completed: its spares may be reused. (After a failed
    /// barrier they are dropped instead; `purge/` is emptied at next start.)
    pub(super) fn barrier_done(&self, p: Promotion) {
        let mut st = self.state();
        st.spares.dirs.extend(p.dirs);
        st.spares.envs.extend(p.envs);
    }

    /// Moves a ready spare to `dest` unless `dest` exists. `Ok(false)`: no
    /// spare (or it vanished); the caller creates a fresh inode.
    pub(super) fn reuse(&self, dir: bool, dest: &Path) -> io::Result<bool> {
        let spare = {
            let mut st = self.state();
            if dir {
                st.spares.dirs.pop()
            } else {
                st.spares.envs.pop()
            }
        };
        let Some(spare) = spare else {
            return Ok(false);
        };
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        match renameat2(
            AT_FDCWD,
            &spare,
            AT_FDCWD,
            dest,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::EEXIST) => {
                let mut st = self.state();
                if dir {
                    st.spares.dirs.push(spare);
                } else {
                    st.spares.envs.push(spare);
                }
                Err(io::Error::from(io::ErrorKind::AlreadyExists))
            }
            // EINVAL: a file system without renameat2 flags. Forget it.
            Err(_) => {
                let _ = if dir {
                    fs::remove_dir_all(&spare)
                } else {
                    fs::remove_file(&spare)
                };
                Ok(false)
            }
        }
    }
}
