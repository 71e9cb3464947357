//! The system's user database behind `<getpwnam>` and userbase lookups, as a trait so that
//! tests and a future privilege-separated parent can answer instead.

use super::*;

/// The system's user database, behind `<getpwnam>`.
pub trait Users: Send + Sync {
    fn getpwnam(&self, name: &str) -> Lookup<UserInfo>;
}

/// `getpwnam(3)` through nix.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemUsers;

impl Users for SystemUsers {
    fn getpwnam(&self, name: &str) -> Lookup<UserInfo> {
        match nix::unistd::User::from_name(name) {
            // table_getpwnam formats "uid:gid:dir" and parses it back with the key as username.
            Ok(Some(u)) => Lookup::Found(UserInfo {
                username: name.to_string(),
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                directory: u.dir.to_string_lossy().into_owned(),
            }),
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::TempFail,
        }
    }
}
