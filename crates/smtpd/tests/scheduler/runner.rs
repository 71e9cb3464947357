//! The runner on a real queue in a temporary spool, with fake agents and a
//! manual clock: retries, delay warnings, expiry, bounces, restart.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsmtpd::queue::envelope::{DSN_DELAY, DSN_FAILURE, DSN_NEVER};
use rsmtpd::queue::{DeliveryType, Envelope, Queue, SockAddr};
use rsmtpd::scheduler::{
    self, Agent, AgentResult, BoxFuture, Clock, Handle, Injector, ManualClock, Settings, Target,
};
use rsmtpd_protocol::Mailaddr;

const T0: i64 = 1_795_609_943;

/// Behaviour by recipient user: `ok`, `tmp…` tempfail, `perm…` permfail, `loop`.
struct FakeAgent {
    clock: Arc<ManualClock>,
    calls: Mutex<Vec<(String, i64)>>,
}

impl Agent for FakeAgent {
    fn deliver<'a>(&'a self, env: &'a Envelope, message: &'a Path) -> BoxFuture<'a, AgentResult> {
        Box::pin(async move {
            assert!(message.exists(), "message file given to the agent");
            let user = env.dest.user.clone();
            self.calls
                .lock()
                .unwrap()
                .push((user.clone(), self.clock.now() - env.ctime));
            if user.starts_with("tmp") {
                AgentResult::temp(format!("\"last line for {}\"", user))
            } else if user.starts_with("perm") {
                AgentResult::perm(format!("\"last line for {}\"", user))
            } else if user == "loop" {
                AgentResult::Loop
            } else if user == "later" {
                let tries = self.calls.lock().unwrap().len();
                if tries <= 3 {
                    AgentResult::Later { after: 5 }
                } else {
                    AgentResult::Ok
                }
            } else if user == "panic" {
                panic!("a bug in the agent")
            } else {
                AgentResult::Ok
            }
        })
    }
}

#[derive(Default)]
struct FakeInjector {
    sent: Mutex<Vec<(String, String, String)>>,
}

impl Injector for FakeInjector {
    fn inject<'a>(
        &'a self,
        smtpname: &'a str,
        to: &'a str,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.sent.lock().unwrap().push((
                smtpname.to_string(),
                to.to_string(),
                String::from_utf8_lossy(payload).into_owned(),
            ));
            Ok(())
        })
    }
}

fn envelope(sender: &str, rcpt: &str, notify: u8) -> Envelope {
    let (su, sd) = sender.split_once('@').unwrap_or(("", ""));
    Envelope {
        dispatcher: "local".into(),
        kind: DeliveryType::Mda,
        smtpname: "vm".into(),
        helo: "client.test".into(),
        hostname: "localhost".into(),
        sockaddr: SockAddr::Ip("127.0.0.1".parse().unwrap()),
        sender: Mailaddr::new(su, sd),
        rcpt: Mailaddr::new(rcpt, "vm"),
        dest: Mailaddr::new(rcpt, "vm"),
        ctime: T0,
        dsn_notify: notify,
        mda_user: rcpt.into(),
        ..Envelope::default()
    }
}

async fn send(q: &Queue, sender: &str, rcpts: &[&str], notify: u8) -> Vec<Envelope> {
    let msgid = q.create_message().unwrap();
    let mut envs = Vec::new();
    for r in rcpts {
        let mut e = envelope(sender, r, notify);
        q.create_envelope(msgid, &mut e).unwrap();
        envs.push(e);
    }
    let mut w = q.message_writer(msgid).unwrap();
    w.write(b"Subject: test\n\nhello\n").unwrap();
    q.commit(msgid, w).await.unwrap();
    envs
}

async fn settle() {
    for _ in 0..30 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    spool: std::path::PathBuf,
    queue: Queue,
    clock: Arc<ManualClock>,
    agent: Arc<FakeAgent>,
    injector: Arc<FakeInjector>,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let queue = Queue::open(&spool).unwrap();
    let clock = ManualClock::new(T0);
    Rig {
        agent: Arc::new(FakeAgent {
            clock: clock.clone(),
            calls: Mutex::new(Vec::new()),
        }),
        injector: Arc::new(FakeInjector::default()),
        _dir: dir,
        spool,
        queue,
        clock,
    }
}

impl Rig {
    fn settings(&self) -> Settings {
        Settings {
            queue_ttl: 120,
            bounce_warn: vec![60],
            clock: Clock::Manual(self.clock.clone()),
            ..Settings::default()
        }
    }

    fn start(&self, envs: Vec<Envelope>) -> Handle {
        scheduler::start(
            self.queue.clone(),
            envs,
            self.agent.clone(),
            self.injector.clone(),
            self.settings(),
        )
    }

    /// Moves the clock one second at a time up to `ctime + t`.
    async fn run_to(&self, t: i64) {
        settle().await;
        while self.clock.now() < T0 + t {
            self.clock.advance(1);
            settle().await;
        }
    }

    fn calls(&self) -> Vec<(String, i64)> {
        self.agent.calls.lock().unwrap().clone()
    }

    fn sent(&self) -> Vec<(String, String, String)> {
        self.injector.sent.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn tempfail_retries_warns_then_expires() {
    let r = rig();
    let envs = send(&r.queue, "al@vm", &["tmp75"], DSN_DELAY | DSN_FAILURE).await;
    let h = r.start(envs.clone());
    r.run_to(130).await;
    let tries: Vec<i64> = r.calls().iter().map(|c| c.1).collect();
    assert_eq!(tries, vec![0, 10, 40, 90]);
    let sent = r.sent();
    assert_eq!(sent.len(), 2, "{:#?}", sent);
    // the warning went out at the 40 s failure (next try at 90 s ≥ 60 s)
    assert_eq!(sent[0].0, "vm");
    assert_eq!(sent[0].1, "al@vm");
    assert!(sent[0]
        .2
        .starts_with("Subject: Delivery status notification: delayed\r\n"));
    assert!(sent[0]
        .2
        .contains("    A message is delayed for more than 1 minute for the following\r\n"));
    assert!(sent[0]
        .2
        .contains("\r\ntmp75@vm: \"last line for tmp75\"\r\n\r\n    Please note"));
    assert!(sent[0].2.contains("kept in the queue for up to 7 days."));
    assert!(sent[0].2.contains("Status: 4.3.0\r\n"));
    // expiry at 120 s: a "delayed" DSN of 0 seconds, 4.4.7
    assert!(sent[1].2.contains("more than 0 seconds"));
    assert!(sent[1].2.contains("tmp75@vm: Envelope expired\r\n"));
    assert!(sent[1].2.contains("Status: 4.4.7\r\n"));
    // everything is gone from the queue
    assert!(h.list().await.is_empty());
    let loaded = r.queue.load().unwrap();
    assert!(loaded.envelopes.is_empty(), "{:?}", loaded.envelopes);
    h.shutdown().await;
}

#[tokio::test]
async fn permfails_of_one_message_give_one_report() {
    let r = rig();
    let envs = send(&r.queue, "al@vm", &["perm67", "ok", "perm1"], 0).await;
    let h = r.start(envs);
    r.run_to(5).await;
    let sent = r.sent();
    assert_eq!(sent.len(), 1, "{:#?}", sent);
    let dsn = &sent[0].2;
    assert!(dsn.starts_with("Subject: Delivery status notification: failed\r\n"));
    // listed in failure order, no blank line between
    assert!(
        dsn.contains(
            "perm67@vm: \"last line for perm67\"\r\nperm1@vm: \"last line for perm1\"\r\n\r\n"
        ) || dsn.contains(
            "perm1@vm: \"last line for perm1\"\r\nperm67@vm: \"last line for perm67\"\r\n\r\n"
        ),
        "{}",
        dsn
    );
    assert_eq!(
        dsn.matches("Action: failed\r\nStatus: 5.3.0\r\n").count(),
        2
    );
    assert!(r.queue.load().unwrap().envelopes.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn no_bounce_to_the_null_sender_nor_with_notify_never() {
    let r = rig();
    let mut envs = send(&r.queue, "", &["perm1", "tmp1"], 0).await;
    envs.extend(send(&r.queue, "al@vm", &["perm2", "tmp2"], DSN_NEVER).await);
    let h = r.start(envs);
    r.run_to(130).await;
    assert!(r.sent().is_empty(), "{:#?}", r.sent());
    assert!(r.queue.load().unwrap().envelopes.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn loop_gives_a_delayed_dsn() {
    let r = rig();
    let envs = send(&r.queue, "al@vm", &["loop"], 0).await;
    let h = r.start(envs);
    r.run_to(3).await;
    let sent = r.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].2.contains("loop@vm: Loop detected\r\n"));
    assert!(sent[0].2.contains("Action: delayed\r\nStatus: 4.4.6\r\n"));
    h.shutdown().await;
}

#[tokio::test]
async fn restart_resumes_every_envelope() {
    let r = rig();
    let mut envs = send(&r.queue, "al@vm", &["tmpa", "tmpb"], 0).await;
    envs.extend(send(&r.queue, "al@vm", &["tmpc"], 0).await);
    let h = r.start(envs);
    r.run_to(15).await; // tries at 0 and 10
    h.shutdown().await;
    assert_eq!(r.calls().len(), 6);

    // "crash": a new process opens the same spool
    let q2 = Queue::open(&r.spool).unwrap();
    let loaded = q2.load().unwrap();
    assert_eq!(loaded.envelopes.len(), 3);
    assert!(loaded.envelopes.iter().all(|e| e.retry == 2));
    assert!(loaded
        .envelopes
        .iter()
        .all(|e| e.errorline.starts_with("\"last line for tmp")));
    let agent = Arc::new(FakeAgent {
        clock: r.clock.clone(),
        calls: Mutex::new(Vec::new()),
    });
    let h2 = scheduler::start(
        q2.clone(),
        loaded.envelopes,
        agent.clone(),
        r.injector.clone(),
        r.settings(),
    );
    settle().await;
    let l = h2.list().await;
    assert_eq!(l.len(), 3);
    // retry 2 → next try at ctime + 40
    assert!(l.iter().all(|e| e.time == T0 + 40), "{:?}", l);
    h2.remove(Target::All).await;
    r.run_to(16).await;
    assert!(q2.load().unwrap().envelopes.is_empty());
    assert!(agent.calls.lock().unwrap().is_empty());
    h2.shutdown().await;
}

/// An agent that panics (a bug) reports a temporary failure: the envelope is tried again on the
/// usual schedule instead of staying in flight until the next restart.
#[tokio::test]
async fn an_agent_that_panics_is_a_temporary_failure() {
    let r = rig();
    let envs = send(&r.queue, "al@vm", &["panic"], DSN_DELAY | DSN_FAILURE).await;
    let h = r.start(envs.clone());
    r.run_to(45).await;
    let tries: Vec<i64> = r.calls().iter().map(|c| c.1).collect();
    assert_eq!(tries, vec![0, 10, 40]);
    drop(h);
}

/// `AgentResult::Later` (a paced relay's backlog): given back three times, each tried again
/// the given 5 s later (not at the backoff's 10 s, 40 s: no retry counted), then delivered;
/// no delay notice, nothing bounced.
#[tokio::test]
async fn later_is_not_a_failure() {
    let r = rig();
    let envs = send(&r.queue, "al@vm", &["later"], DSN_DELAY | DSN_FAILURE).await;
    let h = r.start(envs);
    r.run_to(30).await;
    let tries: Vec<i64> = r.calls().iter().map(|c| c.1).collect();
    assert_eq!(tries, vec![0, 5, 10, 15]);
    assert!(r.sent().is_empty(), "{:#?}", r.sent());
    assert!(h.list().await.is_empty());
    h.shutdown().await;
}
