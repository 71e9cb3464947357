//! sendmail's dialogue with the daemon (enqueue.c's), now on the protocol crate's client: the
//! `-v` echo of every command and reply line, and the first refusal ending it with `command
//! failed: LINE` and a blank line, exit 70 (EX_SOFTWARE). The expected texts are what the
//! previous, line-by-line port of enqueue.c printed (compared by hand on the same daemon).

mod common;

use common::*;

const CONF: &str = "listen on 127.0.0.1 port @PORT@\naction \"l\" mbox\nmatch from local for domain \"ok.test\" action \"l\"\n";

fn sendmail(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    // Not as root: a refused message is saved in the user's dead.letter, not in root's home.
    let uid = if is_root() { Some(65534) } else { None };
    let out = ctl(d, "sendmail", args, "Subject: x\n\n.dot\nhi\n", uid);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verbose_dialogue_and_the_first_refusal() {
    if !common::root_recipient_ok() {
        return;
    }
    let d = Daemon::start(CONF, &[]);
    let h = hostname();
    let (rc, out, err) = sendmail(
        &d,
        &["-v", "-f", "a@b.test", "root@ok.test", "bad@nowhere.test"],
    );
    assert_eq!(rc, 70, "{err}");
    assert_eq!(
        out,
        format!(
            "<<< 220 {h} ESMTP OpenSMTPD\n>>> EHLO localhost\r\n<<< 250-{h} Hello localhost [local], pleased to meet you\n\
             <<< 250-8BITMIME\n<<< 250-ENHANCEDSTATUSCODES\n<<< 250-SIZE 36700160\n<<< 250 HELP\n\
             >>> MAIL FROM:<a@b.test>  \r\n<<< 250 2.0.0 Ok\n\
             >>> RCPT TO:<root@ok.test> \r\n<<< 250 2.1.5 Destination address valid: Recipient ok\n\
             >>> RCPT TO:<bad@nowhere.test> \r\n<<< 550 Invalid recipient: <bad@nowhere.test>\n"
        )
    );
    assert_eq!(
        err,
        "sendmail: command failed: 550 Invalid recipient: <bad@nowhere.test>\n\n"
    );

    let (rc, out, err) = sendmail(&d, &["-v", "-f", "a@b.test", "root@ok.test"]);
    assert_eq!(rc, 0, "{err}");
    // The commands are echoed with their CRLF (enqueue.c prints what it sends); lines()
    // drops it.
    let tail: Vec<&str> = out.lines().skip(9).collect();
    assert_eq!(tail[0], ">>> RCPT TO:<root@ok.test> ");
    assert_eq!(tail[2], ">>> DATA");
    assert_eq!(
        tail[3],
        "<<< 354 Enter mail, end with \".\" on a line by itself"
    );
    assert_eq!(tail[4], ">>> .");
    assert!(tail[5].ends_with(" Message accepted for delivery"), "{out}");
    assert_eq!(&tail[6..], [">>> QUIT", "<<< 221 2.0.0 Bye"]);
}
