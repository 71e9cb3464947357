//! The scheduler's delivery agent (OpenSMTPD's mda process): it turns a queued envelope back
//! into a delivery request for the local agents, and their report into a scheduler result.

use std::path::Path;
use std::sync::Arc;

use rsmtpd_config::Method;

use crate::delivery::{deliver_report, DeliveryRequest, Outcome};
use crate::queue::{DeliveryType, Envelope};
use crate::routing::expand::Target;
use crate::routing::lookup::{Lookup, UserInfo, Users};
use crate::scheduler::{Agent, AgentResult, BoxFuture};
use crate::server::Server;

/// `ESC_OTHER_MAIL_SYSTEM_STATUS`, the detail code of delivery failures (4.3.0 / 5.3.0).
const ESC_OTHER: u8 = 30;
/// `ESC_OTHER_ADDRESS_STATUS` (4.1.0), a user lookup that failed.
const ESC_OTHER_ADDRESS_STATUS: u8 = 10;
/// `ESC_DESTINATION_MAILBOX_HAS_MOVED` (5.1.6): what mda.c answers for a user not found.
const ESC_DESTINATION_MAILBOX_HAS_MOVED: u8 = 16;

pub struct MdaAgent {
    pub server: Arc<Server>,
}

impl Agent for MdaAgent {
    fn deliver<'a>(&'a self, env: &'a Envelope, message: &'a Path) -> BoxFuture<'a, AgentResult> {
        Box::pin(async move { self.run(env, message).await })
    }
}

impl MdaAgent {
    async fn run(&self, env: &Envelope, message: &Path) -> AgentResult {
        if env.kind != DeliveryType::Mda {
            // Relaying is the relay issue's work; the envelope waits in the queue until then.
            return AgentResult::temp("relay delivery is not available yet");
        }
        // One configuration for the whole attempt, even if a reload comes meanwhile.
        let running = self.server.running();
        let conf = &running.config;
        let Some(action) = conf.action(&env.dispatcher) else {
            return crate::server::unknown_dispatcher(&running, env);
        };
        let Method::Local(local) = &action.method else {
            return AgentResult::perm("not a local action");
        };
        let user = match self.user(&running, local.userbase(), &env.mda_user) {
            Ok(u) => u,
            Err(r) => return r,
        };
        let mut req = DeliveryRequest::new(
            action.clone(),
            user,
            message.to_path_buf(),
            env.sender.clone(),
            env.rcpt.clone(),
            env.dest.clone(),
        );
        req.subaddress = env.mda_subaddress.clone();
        req.codec = self.server.queue.codec().clone();
        req.target = target_of(env);
        req.sub_addr_delim = conf.options.sub_addr_delim;
        req.wrapper = local.wrapper.as_ref().and_then(|w| {
            conf.mda_wrappers
                .iter()
                .find(|(n, _)| n == w)
                .map(|(_, c)| c.clone())
        });
        let report = deliver_report(&req).await;
        match report.outcome {
            Outcome::Ok => AgentResult::Ok,
            o if o.is_loop() => AgentResult::Loop,
            Outcome::TempFail(stat) => AgentResult::TempFail {
                error: report.errorline,
                stat,
                code: ESC_OTHER,
            },
            Outcome::PermFail(stat) => AgentResult::PermFail {
                error: report.errorline,
                stat,
                code: ESC_OTHER,
            },
        }
    }

    /// The user the delivery runs as: the action's userbase entry (`<getpwnam>` unless the action
    /// names one). Files and commands of system aliases run as the unprivileged user, which is
    /// looked up there too: with a userbase that lacks it they fail, with mda.c's texts and
    /// codes (a missing user is 5.1.6, a failed lookup 4.1.0).
    fn user(
        &self,
        running: &crate::server::Running,
        userbase: &str,
        name: &str,
    ) -> Result<UserInfo, AgentResult> {
        let failed = |text: &str, code| AgentResult::PermFail {
            error: text.into(),
            stat: text.into(),
            code,
        };
        match running.tables.load().userinfo(userbase, name) {
            Lookup::Found(u) => Ok(u),
            Lookup::TempFail => Err(AgentResult::TempFail {
                error: "Temporary failure in user lookup".into(),
                stat: "Temporary failure in user lookup".into(),
                code: ESC_OTHER_ADDRESS_STATUS,
            }),
            // Not root, we are that user (OpenSMTPD cannot run so): it needs no userbase entry.
            Lookup::NotFound
                if name == self.server.smtpd_user && !crate::privsep::delivers_as_users() =>
            {
                match crate::routing::lookup::SystemUsers.getpwnam(name) {
                    Lookup::Found(u) => Ok(u),
                    _ => Err(failed(
                        "Permanent failure in user lookup",
                        ESC_DESTINATION_MAILBOX_HAS_MOVED,
                    )),
                }
            }
            Lookup::NotFound => Err(failed(
                "Permanent failure in user lookup",
                ESC_DESTINATION_MAILBOX_HAS_MOVED,
            )),
        }
    }
}

/// What an envelope delivers to, from its `mda-exec` (empty for the action's own method).
fn target_of(env: &Envelope) -> Target {
    if env.mda_exec.is_empty() {
        return Target::Action;
    }
    // Files from aliases are stored as the mail.mboxfile command OpenSMTPD runs.
    match env.mda_exec.split_once("/mail.mboxfile -f %{mbox.from} ") {
        Some((_, path)) => Target::File(path.to_string()),
        None => Target::Pipe(env.mda_exec.clone()),
    }
}
