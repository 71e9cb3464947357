#!/usr/bin/env python3
"""Writes the NNN-name.dlg files of this corpus (client steps only; record.py fills in the S:
lines from the real OpenSMTPD). Existing files are left alone unless --force is given, so the
recorded answers and hand-written S+rsmtpd: overrides are not lost.

A step is "text" (C: a command, CRLF added), ("D", text) (a DATA line, CRLF added, no reply
awaited), ("D!", raw) (raw bytes, no reply awaited), ("C!", raw) (raw bytes, replies read until
300 ms of quiet).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
E = "EHLO client.example"
MF = "MAIL FROM:<alice@example.com>"
RT = "RCPT TO:<foo@example.org>"
Q = "QUIT"

D = []  # (name, config, comment, steps)


def d(name, config, comment, *steps):
    D.append((name, config, comment, list(steps)))


def msg(*lines):
    return [("D", l) for l in lines]


# --- greeting, HELO/EHLO ---------------------------------------------------------------------
d("greeting-quit", "reject", "the banner, then QUIT and the server closes", Q)
d("helo", "reject", "HELO with a domain", "HELO client.example", Q)
d("ehlo", "reject", "EHLO with a domain: the extension list", E, Q)
d("helo-no-arg", "reject", "HELO without an argument", "HELO", Q)
d("ehlo-no-arg", "reject", "EHLO without an argument", "EHLO", Q)
d("helo-two-args", "reject", "HELO with two words", "HELO a.example b.example", Q)
d("ehlo-two-args", "reject", "EHLO with two words", "EHLO a.example b.example", Q)
d("ehlo-ipv4-literal", "reject", "EHLO with an address literal", "EHLO [127.0.0.1]", Q)
d("ehlo-ipv6-literal", "reject", "EHLO with an IPv6 address literal", "EHLO [IPv6:::1]", Q)
d("ehlo-bad-chars", "reject", "EHLO with characters a host name cannot have", "EHLO foo_bar!", MF, Q)
d("helo-twice", "reject", "a second HELO", "HELO a.example", "HELO b.example", Q)
d("ehlo-after-helo", "reject", "EHLO after HELO", "HELO a.example", E, Q)
d("ehlo-twice-resets", "reject", "EHLO in a transaction, then MAIL again", E, MF, E, MF, Q)
d("ehlo-lowercase", "reject", "commands are case-insensitive: ehlo", "ehlo client.example", Q)
d("helo-mixed-case", "reject", "commands are case-insensitive: HeLo", "HeLo client.example", Q)
d("ehlo-trailing-space", "reject", "EHLO followed by a space", "EHLO client.example ", Q)
d("ehlo-leading-space", "reject", "a command line starting with a space", " EHLO client.example", Q)
d("ehlo-tab", "reject", "a tab between verb and argument", "EHLO\\tclient.example", Q)
d("ehlo-two-spaces", "reject", "two spaces between verb and argument", "EHLO  client.example", Q)
d("ehlo-long-name", "reject", "EHLO with a 300-character name", "EHLO " + "a" * 300 + ".example", Q)
d("ehlo-trailing-dot", "reject", "EHLO with a trailing dot", "EHLO client.example.", Q)
d("ehlo-localhost", "reject", "EHLO with a bare word", "EHLO localhost", MF, Q)
d("helo-8bit", "reject", "HELO with UTF-8 in the name", "HELO caf\\xc3\\xa9.example", Q)
# --- order --------------------------------------------------------------------------------------
d("mail-before-helo", "reject", "MAIL before HELO", MF, Q)
d("rcpt-before-helo", "reject", "RCPT before HELO", "RCPT TO:<foo@example.org>", Q)
d("data-before-helo", "reject", "DATA before HELO", "DATA", Q)
d("rcpt-before-mail", "reject", "RCPT before MAIL", E, "RCPT TO:<foo@example.org>", Q)
d("data-before-mail", "reject", "DATA before MAIL", E, "DATA", Q)
d("data-before-rcpt", "reject", "DATA after MAIL but before any RCPT", E, MF, "DATA", Q)
d("nested-mail", "reject", "MAIL inside a transaction", E, MF, "MAIL FROM:<bob@example.com>", Q)
d("rset-before-helo", "reject", "RSET before HELO", "RSET", Q)
d("noop-before-helo", "reject", "NOOP before HELO", "NOOP", Q)
d("vrfy-before-helo", "reject", "VRFY before HELO", "VRFY foo", Q)
d("rset-then-rcpt", "reject", "RSET ends the transaction: RCPT is out of order", E, MF, "RSET", "RCPT TO:<foo@example.org>", Q)
# --- MAIL/RCPT syntax ----------------------------------------------------------------------------
d("mail-no-colon", "reject", "MAIL FROM without a colon", E, "MAIL FROM <alice@example.com>", Q)
d("mail-no-brackets", "reject", "MAIL FROM:address without angle brackets", E, "MAIL FROM:alice@example.com", Q)
d("mail-space-after-colon", "reject", "MAIL FROM: <address> (space after the colon)", E, "MAIL FROM: <alice@example.com>", Q)
d("mail-space-before-colon", "reject", "MAIL FROM :<address>", E, "MAIL FROM :<alice@example.com>", Q)
d("mail-lowercase", "reject", "mail from:<a@b> in lower case", E, "mail from:<a@b.example>", Q)
d("mail-mixed-case", "reject", "MaIl FrOm: in mixed case", E, "MaIl FrOm:<alice@example.com>", Q)
d("mail-no-arg", "reject", "MAIL alone", E, "MAIL", Q)
d("mail-from-empty", "reject", "MAIL FROM: with nothing after", E, "MAIL FROM:", Q)
d("mail-to", "reject", "MAIL TO: instead of FROM", E, "MAIL TO:<alice@example.com>", Q)
d("mail-missing-close", "reject", "MAIL FROM:<address without >", E, "MAIL FROM:<alice@example.com", Q)
d("mail-missing-open", "reject", "MAIL FROM:address> without <", E, "MAIL FROM:alice@example.com>", Q)
d("mail-trailing-junk", "reject", "text after the address that is not a parameter", E, "MAIL FROM:<alice@example.com> junk", Q)
d("mailfrom-one-word", "reject", "MAILFROM: as one word", E, "MAILFROM:<alice@example.com>", Q)
d("mail-trailing-space", "reject", "MAIL FROM:<a> followed by a space", E, "MAIL FROM:<alice@example.com> ", Q)
d("rcpt-no-colon", "reject", "RCPT TO without a colon", E, MF, "RCPT TO <foo@example.org>", Q)
d("rcpt-no-brackets", "reject", "RCPT TO:address without angle brackets", E, MF, "RCPT TO:foo@example.org", Q)
d("rcpt-space-after-colon", "deliver", "RCPT TO: <address> (space after the colon)", E, MF, "RCPT TO: <foo@example.org>", Q)
d("rcpt-lowercase", "deliver", "rcpt to: in lower case", E, MF, "rcpt to:<foo@example.org>", Q)
d("rcpt-null", "reject", "RCPT TO:<>", E, MF, "RCPT TO:<>", Q)
d("rcpt-no-arg", "reject", "RCPT alone", E, MF, "RCPT", Q)
d("rcpt-from", "reject", "RCPT FROM: instead of TO", E, MF, "RCPT FROM:<foo@example.org>", Q)
# --- parameters ------------------------------------------------------------------------------------
d("mail-size-ok", "reject", "SIZE= below the limit", E, MF + " SIZE=1000", Q)
d("mail-size-too-big", "reject", "SIZE= above the limit", E, MF + " SIZE=99999999999", Q)
d("mail-size-bad", "reject", "SIZE= not a number", E, MF + " SIZE=abc", Q)
d("mail-size-empty", "reject", "SIZE= with no value", E, MF + " SIZE=", Q)
d("mail-body-7bit", "reject", "BODY=7BIT", E, MF + " BODY=7BIT", Q)
d("mail-body-8bitmime", "reject", "BODY=8BITMIME", E, MF + " BODY=8BITMIME", Q)
d("mail-body-lowercase", "reject", "body=8bitmime in lower case", E, MF + " body=8bitmime", Q)
d("mail-body-bad", "reject", "BODY=BINARYMIME is not supported", E, MF + " BODY=BINARYMIME", Q)
d("mail-ret-full", "reject", "RET=FULL", E, MF + " RET=FULL", Q)
d("mail-ret-hdrs", "reject", "RET=HDRS", E, MF + " RET=HDRS", Q)
d("mail-ret-bad", "reject", "RET=FOO", E, MF + " RET=FOO", Q)
d("mail-ret-twice", "reject", "RET given twice", E, MF + " RET=FULL RET=HDRS", Q)
d("mail-envid", "reject", "ENVID=", E, MF + " ENVID=abc123", Q)
d("mail-envid-bad", "reject", "ENVID= with a character xtext forbids", E, MF + " ENVID=a+2", Q)
d("mail-unknown-param", "reject", "an unknown MAIL parameter", E, MF + " FOO=BAR", Q)
d("mail-smtputf8", "reject", "SMTPUTF8 (not advertised)", E, MF + " SMTPUTF8", Q)
d("mail-auth-param", "reject", "AUTH=<> without authentication", E, MF + " AUTH=<>", Q)
d("mail-params-after-helo", "reject", "ESMTP parameters in a HELO session", "HELO client.example", MF + " BODY=8BITMIME", Q)
d("mail-all-params", "reject", "SIZE, BODY, RET and ENVID together", E, MF + " SIZE=10 BODY=8BITMIME RET=HDRS ENVID=x1", Q)
d("rcpt-notify-success", "deliver", "NOTIFY=SUCCESS,FAILURE", E, MF, RT + " NOTIFY=SUCCESS,FAILURE", Q)
d("rcpt-notify-delay", "deliver", "NOTIFY=DELAY", E, MF, RT + " NOTIFY=DELAY", Q)
d("rcpt-notify-never", "deliver", "NOTIFY=NEVER", E, MF, RT + " NOTIFY=NEVER", Q)
d("rcpt-notify-never-mixed", "deliver", "NOTIFY=NEVER with another value", E, MF, RT + " NOTIFY=NEVER,SUCCESS", Q)
d("rcpt-notify-bad", "deliver", "NOTIFY=FOO", E, MF, RT + " NOTIFY=FOO", Q)
d("rcpt-orcpt", "deliver", "ORCPT=rfc822;address", E, MF, RT + " ORCPT=rfc822;foo@example.org", Q)
d("rcpt-orcpt-bad", "deliver", "ORCPT= without an address type", E, MF, RT + " ORCPT=foo", Q)
d("rcpt-unknown-param", "deliver", "an unknown RCPT parameter", E, MF, RT + " FOO=BAR", Q)
d("rcpt-params-after-helo", "deliver", "NOTIFY= in a HELO session", "HELO client.example", MF, RT + " NOTIFY=SUCCESS", Q)
# --- odd addresses ---------------------------------------------------------------------------------
d("mail-null-sender", "reject", "the null sender <>", E, "MAIL FROM:<>", Q)
d("mail-quoted-local", "reject", "a quoted local part", E, 'MAIL FROM:<"john doe"@example.com>', Q)
d("mail-source-route", "reject", "a source route", E, "MAIL FROM:<@a.example,@b.example:u@d.example>", Q)
d("mail-percent-hack", "reject", "a percent hack", E, "MAIL FROM:<u%d.example@example.com>", Q)
d("mail-ipv4-literal", "reject", "an IPv4 literal domain", E, "MAIL FROM:<u@[127.0.0.1]>", Q)
d("mail-ipv6-literal", "reject", "an IPv6 literal domain", E, "MAIL FROM:<u@[IPv6:::1]>", Q)
d("mail-bad-literal", "reject", "a malformed address literal", E, "MAIL FROM:<u@[300.1.1.1]>", Q)
d("mail-bare-local", "reject", "a sender without a domain", E, "MAIL FROM:<postmaster>", Q)
d("mail-trailing-dot", "reject", "a domain with a trailing dot", E, "MAIL FROM:<u@example.com.>", Q)
d("mail-upper", "reject", "an upper-case sender", E, "MAIL FROM:<USER@EXAMPLE.COM>", Q)
d("mail-local-64", "reject", "a 64-character local part", E, "MAIL FROM:<" + "l" * 64 + "@example.com>", Q)
d("mail-local-65", "reject", "a 65-character local part", E, "MAIL FROM:<" + "l" * 65 + "@example.com>", Q)
d("mail-local-300", "reject", "a 300-character local part", E, "MAIL FROM:<" + "l" * 300 + "@example.com>", Q)
d("mail-label-64", "reject", "a 64-character domain label", E, "MAIL FROM:<u@" + "d" * 64 + ".example>", Q)
d("mail-domain-300", "reject", "a 300-character domain", E, "MAIL FROM:<u@" + ".".join(["d" * 49] * 6) + ".example>", Q)
d("mail-empty-domain", "reject", "nothing after the @", E, "MAIL FROM:<u@>", Q)
d("mail-at-only", "reject", "<@>", E, "MAIL FROM:<@>", Q)
d("mail-double-at", "reject", "two @ signs", E, "MAIL FROM:<a@b@example.com>", Q)
d("mail-double-dot", "reject", "two dots in a row in the domain", E, "MAIL FROM:<u@example..com>", Q)
d("mail-space-in-address", "reject", "a space inside the brackets", E, "MAIL FROM:<alice @example.com>", Q)
d("rcpt-bare-local", "reject", "a bare local part gets the server's host name", E, MF, "RCPT TO:<root>", Q)
d("rcpt-bare-postmaster", "reject", "RCPT TO:<postmaster> on a reject-all server", E, MF, "RCPT TO:<postmaster>", Q)
d("rcpt-source-route", "deliver", "a source route in RCPT", E, MF, "RCPT TO:<@x.example,@y.example:foo@example.org>", Q)
d("rcpt-percent-hack", "deliver", "a percent hack in RCPT", E, MF, "RCPT TO:<foo%x.example@example.org>", Q)
d("rcpt-upper-domain", "deliver", "the domain in upper case", E, MF, "RCPT TO:<foo@EXAMPLE.ORG>", Q)
d("rcpt-upper-user", "deliver", "the user in upper case", E, MF, "RCPT TO:<FOO@example.org>", Q)
d("rcpt-trailing-dot", "deliver", "the domain with a trailing dot", E, MF, "RCPT TO:<foo@example.org.>", Q)
d("rcpt-quoted-local", "deliver", "a quoted local part", E, MF, 'RCPT TO:<"foo"@example.org>', Q)
d("rcpt-ipv4-literal", "reject", "an IPv4 literal domain", E, MF, "RCPT TO:<foo@[127.0.0.1]>", Q)
d("rcpt-ipv6-literal", "reject", "an IPv6 literal domain", E, MF, "RCPT TO:<foo@[IPv6:::1]>", Q)
d("rcpt-unknown-user", "deliver", "a user the userbase does not know", E, MF, "RCPT TO:<bar@example.org>", Q)
d("rcpt-other-domain", "deliver", "a domain no rule accepts", E, MF, "RCPT TO:<foo@example.net>", Q)
d("rcpt-subaddress", "deliver", "a +tag sub-address", E, MF, "RCPT TO:<foo+tag@example.org>", Q)
d("rcpt-same-twice", "deliver", "the same recipient twice", E, MF, RT, RT, Q)
d("rcpt-null-sender", "deliver", "a valid recipient from the null sender", E, "MAIL FROM:<>", RT, Q)
# --- other commands ---------------------------------------------------------------------------------
d("rset", "reject", "RSET in a transaction, then MAIL again", E, MF, "RSET", MF, Q)
d("noop", "reject", "NOOP", E, "NOOP", Q)
d("noop-arg", "reject", "NOOP with an argument", E, "NOOP hello", Q)
d("rset-arg", "reject", "RSET with an argument", E, "RSET now", Q)
d("help", "reject", "HELP", E, "HELP", Q)
d("help-arg", "reject", "HELP with a topic", E, "HELP MAIL", Q)
d("vrfy", "reject", "VRFY", E, "VRFY foo", Q)
d("vrfy-no-arg", "reject", "VRFY without an argument", E, "VRFY", Q)
d("expn", "reject", "EXPN", E, "EXPN list", Q)
d("unknown-command", "reject", "an unknown command", E, "FOO", Q)
d("misspelled-mail", "reject", "a misspelled MAIL", E, "MAOL FROM:<alice@example.com>", Q)
d("empty-line", "reject", "an empty command line", E, "", Q)
d("starttls-no-tls", "reject", "STARTTLS on a listener without TLS", E, "STARTTLS", Q)
d("auth-no-auth", "reject", "AUTH on a listener without auth", E, "AUTH PLAIN", Q)
d("etrn", "reject", "ETRN", E, "ETRN example.org", Q)
d("bdat", "reject", "BDAT (CHUNKING not supported)", E, MF, "BDAT 10 LAST", Q)
d("turn", "reject", "TURN", E, "TURN", Q)
d("quit-arg", "reject", "QUIT with an argument", E, "QUIT now", Q)
d("quit-lowercase", "reject", "quit in lower case", E, "quit")
d("nul-byte", "reject", "a NUL byte in a command", E, "NOOP\\x00x", Q)
d("many-unknown", "reject", "sixty unknown commands in a row", E, *(["FOO"] * 60), Q)
d("line-1000", "reject", "a command line of 1000 characters with its CRLF", E, "NOOP " + "a" * 993, Q)
d("line-too-long", "reject", "a command line of 1100 characters", E, "NOOP " + "a" * 1095, Q)
d("line-too-long-huge", "reject", "a command line of 70000 characters", E, "NOOP " + "a" * 70000, Q)
d("pipelining-mail-rcpt", "reject", "MAIL and RCPT in one write", E, ("C!", "MAIL FROM:<alice@example.com>\\r\\nRCPT TO:<foo@example.org>\\r\\n"), Q)
d("pipelining-ehlo-noop", "reject", "EHLO and NOOP in one write", ("C!", "EHLO client.example\\r\\nNOOP\\r\\n"), Q)
d("pipelining-noop-quit", "reject", "NOOP and QUIT in one write", E, ("C!", "NOOP\\r\\nQUIT\\r\\n"))
d("pipelining-split-line", "reject", "one command in two writes", E, ("C!", "NO"), ("C!", "OP\\r\\n"), Q)
d("bare-lf-command", "reject", "a command ended by LF alone", E, ("C!", "NOOP\\n"), Q)
d("bare-cr-command", "reject", "a command ended by CR alone", E, ("C!", "NOOP\\r"), Q)
# --- DATA -------------------------------------------------------------------------------------------
HDR = ["From: alice@example.com", "To: foo@example.org", "Subject: test", ""]
d("data-accepted", "deliver", "a message to a valid recipient", E, MF, RT, "DATA", *msg(*HDR, "Hello."), ".", Q)
d("data-helo", "deliver", "a message in a HELO session", "HELO client.example", MF, RT, "DATA", *msg(*HDR, "Hello."), ".", Q)
d("data-dot-stuffing", "deliver", "dot-stuffed body lines", E, MF, RT, "DATA", *msg(*HDR, "..one dot", "...two dots", ". dot space"), ".", Q)
d("data-empty", "deliver", "an empty message", E, MF, RT, "DATA", ".", Q)
d("data-no-headers", "deliver", "a message with a body only", E, MF, RT, "DATA", *msg("just a body"), ".", Q)
d("data-arg", "deliver", "DATA with an argument", E, MF, RT, "DATA now", Q)
d("data-two-messages", "deliver", "two transactions in one session", E, MF, RT, "DATA", *msg(*HDR, "one"), ".", MF, RT, "DATA", *msg(*HDR, "two"), ".", Q)
d("data-after-refused-rcpt", "deliver", "DATA when every RCPT was refused", E, MF, "RCPT TO:<bar@example.org>", "DATA", Q)
d("data-mixed-rcpts", "deliver", "one refused and one accepted recipient", E, MF, "RCPT TO:<bar@example.org>", RT, "DATA", *msg(*HDR, "x"), ".", Q)
d("data-rset-after", "deliver", "RSET and NOOP after a message", E, MF, RT, "DATA", *msg(*HDR, "x"), ".", "RSET", "NOOP", Q)
d("data-8bit", "deliver", "8-bit body with BODY=8BITMIME", E, MF + " BODY=8BITMIME", RT, "DATA", *msg(*HDR, "caf\\xc3\\xa9"), ".", Q)
d("data-long-line", "deliver", "a 1500-character body line", E, MF, RT, "DATA", *msg(*HDR, "x" * 1500), ".", Q)
d("data-bare-lf-body", "deliver", "bare LF line ends inside the body", E, MF, RT, "DATA", ("D!", "Subject: t\\r\\n\\r\\nline one\\nline two\\r\\n"), ".", Q)
d("data-bare-cr-body", "deliver", "a bare CR inside the body", E, MF, RT, "DATA", ("D!", "Subject: t\\r\\n\\r\\nline\\rone\\r\\n"), ".", Q)
d("data-smuggle-lf-dot-crlf", "deliver", "smuggling attempt: <LF>.<CR><LF> then a second transaction in the body", E, MF, RT, "DATA",
  ("C!", "Subject: t\\r\\n\\r\\nbody\\n.\\r\\nMAIL FROM:<mallory@example.com>\\r\\nRCPT TO:<foo@example.org>\\r\\nDATA\\r\\nSubject: smuggled\\r\\n\\r\\nsmuggled\\r\\n"), ".", Q)
d("data-smuggle-lf-dot-lf", "deliver", "smuggling attempt: <LF>.<LF>", E, MF, RT, "DATA",
  ("C!", "Subject: t\\r\\n\\r\\nbody\\n.\\nNOOP\\r\\n"), ".", Q)
d("data-smuggle-cr-dot-cr", "deliver", "smuggling attempt: <CR>.<CR>", E, MF, RT, "DATA",
  ("C!", "Subject: t\\r\\n\\r\\nbody\\r.\\rNOOP\\r\\n"), ".", Q)
d("data-smuggle-crlf-dot-lf", "deliver", "smuggling attempt: <CR><LF>.<LF>", E, MF, RT, "DATA",
  ("C!", "Subject: t\\r\\n\\r\\nbody\\r\\n.\\nNOOP\\r\\n"), ".", Q)
d("data-dot-pipelined", "deliver", "the end of data and QUIT in one write", E, MF, RT, "DATA", ("D", "Subject: t"), ("D", ""), ("C!", "body\\r\\n.\\r\\nQUIT\\r\\n"))
d("data-many-headers", "deliver", "a message with folded headers", E, MF, RT, "DATA", *msg("Subject: a", "\\tfolded", "X-Long: b", "  c", "", "body"), ".", Q)
# --- limits ------------------------------------------------------------------------------------------
d("maxsize-ehlo", "maxsize", "SIZE advertised from max-message-size", E, Q)
d("maxsize-param-over", "maxsize", "SIZE= above max-message-size", E, MF + " SIZE=2000", Q)
d("maxsize-param-equal", "maxsize", "SIZE= equal to max-message-size", E, MF + " SIZE=1000", Q)
d("maxsize-data-over", "maxsize", "a message larger than max-message-size", E, MF, RT, "DATA", *msg(*HDR, *(["y" * 70] * 20)), ".", Q)
d("maxsize-data-under", "maxsize", "a message just below max-message-size", E, MF, RT, "DATA", *msg(*HDR, *(["y" * 70] * 5)), ".", Q)
d("maxsize-then-next", "maxsize", "a transaction after an oversized message", E, MF, RT, "DATA", *msg(*HDR, *(["y" * 70] * 20)), ".", MF, RT, "DATA", *msg(*HDR, "small"), ".", Q)
d("maxrcpt-three", "maxrcpt", "a third recipient above max-rcpt 2", E, MF, "RCPT TO:<foo@example.org>", "RCPT TO:<bar@example.org>", "RCPT TO:<baz@example.org>", Q)
d("maxrcpt-data", "maxrcpt", "too many recipients, then DATA goes to the accepted ones", E, MF, "RCPT TO:<foo@example.org>", "RCPT TO:<bar@example.org>", "RCPT TO:<baz@example.org>", "DATA", *msg(*HDR, "x"), ".", Q)
d("maxrcpt-reset", "maxrcpt", "the recipient count starts over with a new transaction", E, MF, "RCPT TO:<foo@example.org>", "RCPT TO:<bar@example.org>", "RSET", MF, "RCPT TO:<baz@example.org>", "RCPT TO:<foo@example.org>", Q)
# --- the seed's steps ------------------------------------------------------------------------------------
d("seed1-listen", "seed1", "seed step 1: everything refused; a bare local part gets the host name", "EHLO localhost", "MAIL FROM:<>", "RCPT TO:<root>", "quit")
d("seed3-users", "seed3", "seed step 3: aliases and users are valid recipients", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<abuse>", "RCPT TO:<postmaster>", "RCPT TO:<root>", "RCPT TO:<foo>", "RCPT TO:<bar>", "quit")
d("seed3-with-host", "seed3", "seed step 3: the same with the host's domain", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<abuse@@HOST@>", "RCPT TO:<root@@HOST@>", "RCPT TO:<foo@@HOST@>", "RCPT TO:<bar@@HOST@>", "quit")
d("seed3-system-users", "seed3", "seed step 3: system users are not recipients", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<nobody>", "RCPT TO:<_smtpd>", "RCPT TO:<vmail>", "RCPT TO:<daemon>", "quit")
d("seed3-other-domain", "seed3", "seed step 3: other domains are not accepted", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<foo@bsdsx.fr>", "RCPT TO:<foo@example.org>", "quit")
d("seed3-misspelled", "seed3", "seed step 3: a misspelled command", "EHLO localhost", "MAIL FROM:<>", "RCTP TO:<foo>", "RCPT TO:<foo>", "quit")
d("seed4-domain", "seed4", "seed step 4: only the bsdsx.fr domain", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<foo@bsdsx.fr>", "RCPT TO:<foo>", "RCPT TO:<foo@@HOST@>", "RCPT TO:<abuse@bsdsx.fr>", "RCPT TO:<nobody@bsdsx.fr>", "quit")
d("seed5-subdomains", "seed5", "seed step 5: subdomains through *.bsdsx.fr", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<foo@bsdsx.fr>", "RCPT TO:<foo@cun.bsdsx.fr>", "RCPT TO:<bar@a.b.bsdsx.fr>", "RCPT TO:<root@cun.bsdsx.fr>", "quit")
d("seed5-strict", "seed5", "seed step 5: wildcard matching is strict", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<foo@absdsx.fr>", "RCPT TO:<foo@bsdsxafr>", "RCPT TO:<foo@bsdsx.fr.fr>", "RCPT TO:<foo@.bsdsx.fr>", "RCPT TO:<foo>", "quit")
d("seed5-case", "seed5", "seed step 5: domain matching ignores case", "EHLO localhost", "MAIL FROM:<>",
  "RCPT TO:<foo@BSDSX.FR>", "RCPT TO:<foo@Cun.Bsdsx.Fr>", "quit")
d("seed5-nobody", "seed5", "seed step 5: nobody is not a recipient", "EHLO localhost", "MAIL FROM:<>", "RCPT TO:<nobody@bsdsx.fr>", "quit")


def main():
    force = "--force" in sys.argv
    n = 0
    for i, (name, config, comment, steps) in enumerate(D, 1):
        fn = os.path.join(HERE, "%03d-%s.dlg" % (i, name))
        if os.path.exists(fn) and not force:
            continue
        out = ["# " + comment, "config: " + config]
        for s in steps:
            if isinstance(s, str):
                out.append("C: " + s)
            else:
                out.append("%s: %s" % s)
        with open(fn, "w") as f:
            f.write("\n".join(out) + "\n")
        n += 1
    print("%d dialogues, %d written" % (len(D), n))


if __name__ == "__main__":
    main()
