//! `auth` without a table: the system's users, through PAM service `smtpd`, as Debian's
//! OpenSMTPD does (`parent_auth_pam()`): `pam_start`, `pam_authenticate`, `pam_acct_mgmt`.
//!
//! libpam is opened at run time (`libpam.so.0`, part of every Debian system through
//! libpam0g), so building needs no PAM headers or link library. PAM blocks (pam_unix pauses
//! about 2 s after a wrong password): call [`check`] off the async workers.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use rsmtpd_protocol::server::LookupResult;

/// `USE_PAM_SERVICE` of Debian's build.
pub const SERVICE: &str = "smtpd";

const PAM_SUCCESS: c_int = 0;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_BUF_ERR: c_int = 5;
const PAM_AUTHINFO_UNAVAIL: c_int = 9;
const PAM_CONV_ERR: c_int = 19;
const PAM_ABORT: c_int = 26;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

type StartFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut c_void) -> c_int;
type StepFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;

struct Pam {
    start: StartFn,
    authenticate: StepFn,
    acct_mgmt: StepFn,
    end: StepFn,
}

/// libpam's entry points, loaded once; Err with why it could not be.
fn pam() -> Result<&'static Pam, &'static str> {
    static PAM: OnceLock<Result<Pam, &'static str>> = OnceLock::new();
    PAM.get_or_init(|| {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the library stays loaded for the
        // life of the process (never dlclose'd), so the function pointers stay valid. Each
        // symbol is cast to the prototype of <security/pam_appl.h>.
        unsafe {
            let h = libc::dlopen(c"libpam.so.0".as_ptr(), libc::RTLD_NOW);
            if h.is_null() {
                return Err("libpam.so.0 cannot be loaded");
            }
            let sym = |name: &CStr| {
                let p = libc::dlsym(h, name.as_ptr());
                (!p.is_null()).then_some(p)
            };
            match (
                sym(c"pam_start"),
                sym(c"pam_authenticate"),
                sym(c"pam_acct_mgmt"),
                sym(c"pam_end"),
            ) {
                (Some(s), Some(a), Some(m), Some(e)) => Ok(Pam {
                    start: std::mem::transmute::<*mut c_void, StartFn>(s),
                    authenticate: std::mem::transmute::<*mut c_void, StepFn>(a),
                    acct_mgmt: std::mem::transmute::<*mut c_void, StepFn>(m),
                    end: std::mem::transmute::<*mut c_void, StepFn>(e),
                }),
                _ => Err("libpam.so.0 lacks pam_start, pam_authenticate, pam_acct_mgmt or pam_end"),
            }
        }
    })
    .as_ref()
    .map_err(|e| *e)
}

/// Whether PAM can be used here (checked at start for listeners with system users).
pub fn available() -> Result<(), &'static str> {
    pam().map(|_| ())
}

/// `pam_conv_password()`: answers PAM's one prompt with the password.
unsafe extern "C" fn conversation(
    num_msg: c_int,
    _msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    password: *mut c_void,
) -> c_int {
    if num_msg != 1 || resp.is_null() || password.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: PAM frees the response array and its string with free(), so both come from
    // calloc/strdup; `password` is the CString `check` passes, alive for the whole
    // pam_authenticate call.
    unsafe {
        let r = libc::calloc(1, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if r.is_null() {
            return PAM_BUF_ERR;
        }
        let s = libc::strdup(password as *const c_char);
        if s.is_null() {
            libc::free(r as *mut c_void);
            return PAM_BUF_ERR;
        }
        (*r).resp = s;
        (*r).resp_retcode = 0;
        *resp = r;
    }
    PAM_SUCCESS
}

/// A system user's password: asked of the root parent in the engine of a split daemon (the
/// engine cannot read /etc/shadow, and pam_unix's helper gains nothing under no_new_privs),
/// checked here otherwise.
pub fn check(user: &[u8], password: &[u8]) -> LookupResult {
    use crate::privsep::proto::{Reply, Request};
    let Some(client) = crate::privsep::engine() else {
        return check_here(user, password);
    };
    let req = Request::Auth {
        user: user.to_vec(),
        password: password.to_vec(),
    };
    match client.auth.call(&req, &[]) {
        Ok((Reply::Auth(0), _)) => LookupResult::Ok,
        Ok((Reply::Auth(1), _)) => LookupResult::PermFail,
        _ => LookupResult::TempFail,
    }
}

/// `parent_auth_pam()`: the user's password, then whether the account may be used now.
pub fn check_here(user: &[u8], password: &[u8]) -> LookupResult {
    let Ok(pam) = pam() else {
        return LookupResult::TempFail;
    };
    // C strings end at the first NUL, as OpenSMTPD's do.
    let cut = |b: &[u8]| {
        b.iter()
            .position(|&c| c == 0)
            .map_or(b.to_vec(), |i| b[..i].to_vec())
    };
    let (Ok(user), Ok(password), Ok(service)) = (
        CString::new(cut(user)),
        CString::new(cut(password)),
        CString::new(SERVICE),
    ) else {
        return LookupResult::PermFail;
    };
    let password = zeroize::Zeroizing::new(password.into_bytes_with_nul());
    let conv = PamConv {
        conv: conversation,
        appdata_ptr: password.as_ptr() as *mut c_void,
    };
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: the prototypes of <security/pam_appl.h>; `conv`, `user`, `service` and
    // `password` outlive the handle, which pam_end releases on every path.
    let rc = unsafe {
        let mut rc = (pam.start)(service.as_ptr(), user.as_ptr(), &conv, &mut handle);
        if rc == PAM_SUCCESS {
            rc = (pam.authenticate)(handle, 0);
        }
        if rc == PAM_SUCCESS {
            rc = (pam.acct_mgmt)(handle, 0);
        }
        if !handle.is_null() {
            (pam.end)(handle, rc);
        }
        rc
    };
    match rc {
        PAM_SUCCESS => LookupResult::Ok,
        PAM_SYSTEM_ERR | PAM_ABORT | PAM_AUTHINFO_UNAVAIL => LookupResult::TempFail,
        _ => LookupResult::PermFail,
    }
}
