# Valid configurations (real smtpd -n says "configuration OK", exit 0).
# Each entry: V(short-name, one-line description, body).


def define(c):
    V, M, PKI, CA, D = c["V"], c["M"], c["PKI"], c["CA"], c["D"]

    # ---------------------------------------------------------------- lexical
    V("minimal", "smallest valid config: one mbox action and one match rule",
      'action "a" mbox\nmatch for local action "a"\n')
    V("match-default-from-for", "match with no from/for criteria (defaults to from local for local)",
      'action "a" mbox\nmatch action "a"\n')
    V("reject-only", "a single match rule that rejects everything",
      'match from any for any reject\n')
    V("comments", "comments on their own lines, after statements and indented",
      '# leading comment\n\n   # indented comment\naction "a" mbox # trailing comment\n'
      '\t# tab indented\nmatch from any for any action "a"   # another\n# last line comment')
    V("blank-lines", "many empty and whitespace-only lines between statements",
      '\n\n   \n\t\naction "a" mbox\n\n\n \t \nmatch from any for any action "a"\n\n\n')
    V("no-final-newline", "last line has no terminating newline",
      'action "a" mbox\nmatch from any for any action "a"')
    V("crlf-free-tabs", "tabs used as separators everywhere",
      'action\t"a"\tmbox\nmatch\tfrom\tany\tfor\tany\taction\t"a"\n')
    V("line-continuation", "backslash-newline joins lines inside a statement",
      'action "a" \\\n  mbox\nmatch from any \\\n  for any \\\n  action "a"\n')
    V("line-continuation-quoted", "backslash-newline inside a quoted string",
      'action "a" mda "/usr/bin/procmail \\\n-f -"\nmatch from any for any action "a"\n')
    V("single-quotes", "single-quoted strings work like double-quoted ones",
      "action 'a' mbox\nmatch from any for any action 'a'\n")
    V("quote-escapes", "escaped quote, space and tab inside quoted strings",
      'action "a\\"b" mda "echo \\"hi\\" \\ x\\\ty \\n"\nmatch from any for any action "a\\"b"\n'
      "action 'c\\'d' mda 'echo \\'x\\''\nmatch from any for any action 'c\\'d'\n")
    V("quoted-keyword-names", "reserved words are fine as names when quoted",
      'action "local" mbox\naction "relay" relay\ntable "alias" { "match" = "action" }\n'
      'match from any for any action "local"\n')
    V("quoted-newline", "a newline inside a quoted string is kept and counts lines",
      'action "a" mda "line1\nline2"\nmatch from any for any action "a"\n')
    V("bareword-punct", "bare words may contain punctuation like - . / : @ _ + %",
      'action a-b.c/d:e@f_g+h%i mbox\nmatch from any for any action a-b.c/d:e@f_g+h%i\n')
    V("bare-action-name", "unquoted action name that is not a keyword",
      'action local_mail mbox\nmatch from any for any action local_mail\n')
    V("number-as-name", "names that look like numbers must be quoted",
      'action "123" mbox\nmatch from any for any action "123"\n')
    V("macro-basic", "macro defined and used as a value",
      'act = "a"\naction $act mbox\nmatch from any for any action $act\n')
    V("macro-multiword", "macro value containing several tokens is re-lexed",
      'crit = "from any for any"\naction "a" mbox\nmatch $crit action "a"\n')
    V("macro-unquoted-value", "macro defined with an unquoted bare word value",
      'act = mymail\naction $act mbox\nmatch from any for any action $act\n')
    V("macro-redefine", "redefining a macro: the last definition wins",
      'act = "first"\nact = "second"\naction "second" mbox\nmatch from any for any action $act\n')
    V("macro-in-quotes-literal", "$name inside quotes is not expanded",
      'action "a" mda "echo $HOME"\nmatch from any for any action "a"\n')
    V("macro-unused", "a macro that is never used is not an error",
      'unused = "foo"\n' + M)
    V("macro-keyword-value", "macro whose value is a keyword phrase",
      'meth = "maildir junk"\naction "a" $meth\nmatch from any for any action "a"\n')
    V("macro-underscore-digits", "macro names with underscores and digits",
      'my_act_2 = "a"\naction $my_act_2 mbox\nmatch from any for any action $my_act_2\n')
    V("macro-table", "macro expanding to a table body",
      'doms = "{ example.org, example.com }"\naction "a" mbox\nmatch from any for domain $doms action "a"\n')
    V("include-relative", "include of a relative path (resolved against the working directory)",
      'include "../data/inc-tables.conf"\ninclude "../data/inc-action.conf"\n'
      'match from any for domain <inc_domains> action "inc_local"\n')
    V("include-absolute", "include of an absolute path",
      f'include "{D}/inc-abs.conf"\naction "a" mbox\nmatch from any for domain <absdom> action "a"\n')
    V("include-nested", "an included file that includes other files",
      'include "../data/inc-nested.conf"\ninclude "../data/inc-rules.conf"\n')
    V("include-macros", "macros defined in an included file are visible afterwards",
      'include "../data/inc-macros.conf"\naction $incact mbox\nmatch from any for domain $incdom action $incact\n')
    V("include-noeol", "included file whose last line has no newline",
      'include "../data/inc-noeol.conf"\nmatch from any for any action "noeol"\n')
    V("include-empty", "including an empty file and a comments-only file",
      'include "../data/empty"\ninclude "../data/comments-only"\n' + M)

    # ---------------------------------------------------------------- tables
    V("table-inline-list", "named inline list table with commas",
      'table doms { example.org, example.com, example.net }\naction "a" mbox\n'
      'match from any for domain <doms> action "a"\n')
    V("table-inline-list-nocomma", "inline list without commas",
      'table doms { example.org example.com }\naction "a" mbox\nmatch from any for domain <doms> action "a"\n')
    V("table-inline-list-newlines", "inline list spread over lines (newlines only between elements, not after { or , or before })",
      'table doms { example.org\n  example.com, example.net\n\n  example.org }\naction "a" mbox\n'
      'match from any for domain <doms> action "a"\n')
    V("table-inline-map-eq", "inline map using =",
      'table al { root = admin@example.org, postmaster = root }\naction "a" mbox alias <al>\n'
      'match from any for any action "a"\n')
    V("table-inline-map-arrow", "inline map using =>",
      'table al { root => admin@example.org, postmaster => root }\naction "a" mbox alias <al>\n'
      'match from any for any action "a"\n')
    V("table-inline-map-mixed", "inline map mixing = and =>, with newlines between elements",
      'table al { root = admin@example.org\n  postmaster => root\n  abuse = "root, admin@example.org" }\n'
      'action "a" mbox alias <al>\nmatch from any for any action "a"\n')
    V("table-inline-quoted", "inline table with quoted keys and values",
      'table al { "root" = "a b", \'x\' = \'y\' }\naction "a" mbox alias <al>\nmatch from any for any action "a"\n')
    V("table-single-element", "a single string where a table is expected",
      'action "a" mbox\nmatch from any for domain example.org action "a"\n')
    V("table-file-hash", "file: backend table used as aliases",
      f'table aliases file:{D}/aliases\naction "a" mbox alias <aliases>\nmatch from any for any action "a"\n')
    V("table-file-list", "file: backend list of domains",
      f'table doms file:{D}/domains\naction "a" mbox\nmatch from any for domain <doms> action "a"\n')
    V("table-bare-path-quoted", "table given as a quoted absolute path (static backend)",
      f'table aliases "{D}/aliases"\naction "a" mbox alias <aliases>\nmatch from any for any action "a"\n')
    V("table-static-backend", "explicit static: backend",
      f'table aliases static:{D}/aliases\naction "a" mbox alias <aliases>\nmatch from any for any action "a"\n')
    V("table-file-empty", "an empty file table is accepted and usable as a map",
      f'table e file:{D}/empty\naction "a" mbox alias <e>\nmatch from any for any action "a"\n')
    V("table-file-forced-list", "a file table forced to list type by '# @list'",
      f'table l file:{D}/forced-list\naction "a" mbox\nmatch from any for domain <l> action "a"\n')
    V("table-db", "db: backend built with makemap",
      f'table aliases db:{D}/aliases.db\naction "a" mbox alias <aliases>\nmatch from any for any action "a"\n')
    V("table-db-set", "db: backend set built with makemap -t set, used as a domain list",
      f'table doms db:{D}/domains.db\naction "a" mbox\nmatch from any for domain <doms> action "a"\n')
    V("table-getpwnam-builtin", "builtin getpwnam table is named \"<getpwnam>\" and must be referenced as <\"<getpwnam>\">",
      'action "a" maildir userbase <"<getpwnam>">\nmatch from any for any action "a"\n')
    V("table-builtin-localhost", "builtin table <\"<localhost>\"> (the brackets are part of its name) as a from src table",
      'action "a" mbox\nmatch from src <"<localhost>"> for any action "a"\n')
    V("table-builtin-anyhost", "builtin table <\"<anyhost>\"> as a from src table",
      'action "a" mbox\nmatch from src <"<anyhost>"> for any action "a"\n')
    V("table-builtin-localnames", "builtin table <\"<localnames>\"> as for domain",
      'action "a" mbox\nmatch from any for domain <"<localnames>"> action "a"\n')
    V("table-builtin-anydestination", "builtin table <\"<anydestination>\"> as for domain",
      'action "a" mbox\nmatch from any for domain <"<anydestination>"> action "a"\n')
    V("table-getpwnam-backend", "a named table with the getpwnam backend as userbase",
      'table pw getpwnam\naction "a" maildir userbase <pw>\nmatch from any for any action "a"\n')
    V("table-unused", "a table that is defined but never used",
      'table unused { a, b }\n' + M)
    V("table-userbase-file", "userbase file table with uid:gid:home entries",
      f'table ub file:{D}/userbase\naction "a" maildir userbase <ub>\nmatch from any for any action "a"\n')
    V("table-userbase-bad-entries", "userbase entries that are not uid:gid:home are not checked by -n",
      f'table ub file:{D}/userbase-bad\naction "a" maildir userbase <ub>\nmatch from any for any action "a"\n')
    V("table-userbase-inline-bad", "inline userbase with a malformed entry is not checked by -n",
      'table ub { bob = garbage }\naction "a" maildir userbase <ub>\nmatch from any for any action "a"\n')
    V("table-netaddr-bad", "a src table with bad CIDR entries is not checked by -n",
      f'table nets file:{D}/netaddr-bad\naction "a" mbox\nmatch from src <nets> for any action "a"\n')
    V("table-regex-bad", "a regex table with an invalid regex is not checked by -n",
      f'table rx file:{D}/regex-bad\naction "a" mbox\nmatch from any for domain regex <rx> action "a"\n')
    V("table-inline-bad-cidr", "inline src table with a bad CIDR is not checked by -n",
      'action "a" mbox\nmatch from src { 300.0.0.0/99 } for any action "a"\n')
    V("table-inline-bad-regex", "inline regex table with an invalid regex is not checked by -n",
      'action "a" mbox\nmatch from any for domain regex "([a-z" action "a"\n')
    V("table-name-mixed-case", "table names are case-sensitive identifiers",
      'table Doms { example.org }\ntable doms { example.com }\naction "a" mbox\n'
      'match from any for domain <Doms> action "a"\nmatch from any for domain <doms> action "a"\n')

    # ---------------------------------------------------------------- pki / ca
    V("pki-basic", "pki with cert and key on separate lines",
      PKI + M)
    V("pki-one-line", "pki with cert and key on a single line",
      f'pki mail.example.org cert "{D}/cert.pem" key "{D}/key.pem"\n' + M)
    V("pki-dhe-none", "pki dhe none",
      PKI + 'pki mail.example.org dhe none\n' + M)
    V("pki-dhe-auto", "pki dhe auto",
      PKI + 'pki mail.example.org dhe auto\n' + M)
    V("pki-dhe-legacy", "pki dhe legacy (case-insensitive keyword)",
      PKI + 'pki mail.example.org dhe LEGACY\n' + M)
    V("pki-wildcard", "pki named * (catch-all)",
      f'pki "*" cert "{D}/cert.pem"\npki "*" key "{D}/key.pem"\n' + M)
    V("pki-uppercase-name", "pki name is lower-cased: MAIL.Example.ORG matches mail.example.org",
      f'pki MAIL.Example.ORG cert "{D}/cert.pem"\npki mail.example.org key "{D}/key.pem"\n' + M)
    V("pki-relative-path", "pki files given relative to the working directory",
      'pki mail.example.org cert "../data/cert.pem"\npki mail.example.org key "../data/key.pem"\n' + M)
    V("pki-two-names", "two pki entries sharing the same files",
      PKI + f'pki mx.example.org cert "{D}/cert.pem"\npki mx.example.org key "{D}/key.pem"\n' + M)
    V("ca-basic", "ca with a cert file",
      CA + M)
    V("ca-and-pki", "ca and pki with the same name",
      PKI + CA + M)
    V("pki-cert-twice", "a second cert line for the same pki replaces the first",
      PKI + f'pki mail.example.org cert "{D}/cert.pem"\n' + M)

    # ---------------------------------------------------------------- listen
    L = lambda s: s + '\n' + M
    V("listen-socket", "listen on socket", L('listen on socket'))
    V("listen-socket-opts", "listen on socket with mask-src and tag",
      L('listen on socket mask-src tag LOCAL'))
    V("listen-socket-filter", "listen on socket with a named filter",
      'filter f1 phase mail-from match !auth reject "550 no"\nlisten on socket filter f1\n' + M)
    V("listen-socket-filter-chain", "listen on socket with an inline filter chain",
      'filter f1 phase connect match rdns junk\nfilter f2 phase helo match helo example.org bypass\n'
      'listen on socket filter { f1, f2 }\n' + M)
    V("listen-lo", "listen on the loopback interface by name", L('listen on lo'))
    V("listen-ipv4", "listen on an IPv4 literal", L('listen on 127.0.0.1'))
    V("listen-ipv6", "listen on an IPv6 literal", L('listen on ::1'))
    V("listen-ipv6-quoted", "listen on a quoted IPv6 literal", L('listen on "::1"'))
    V("listen-any-addr", "listen on the IPv4 and IPv6 wildcard addresses",
      L('listen on 0.0.0.0\nlisten on "::"'))
    V("listen-nonlocal-ip", "listen on an IP literal that is not configured on the machine",
      L('listen on 192.0.2.99'))
    V("listen-localhost", "listen on the name localhost (resolved via /etc/hosts)", L('listen on localhost'))
    V("listen-inet4", "listen on lo restricted to inet4", L('listen on lo inet4'))
    V("listen-inet6-addr", "listen on ::1 with inet6", L('listen on ::1 inet6'))
    V("listen-port-number", "listen with numeric ports", L('listen on 127.0.0.1 port 2525\nlisten on 127.0.0.1 port 1\nlisten on 127.0.0.1 port 65535'))
    V("listen-port-name-netbase", "listen with service names (needs /etc/services from netbase)",
      L('listen on 127.0.0.1 port submission\nlisten on 127.0.0.1 port smtp\nlisten on 127.0.0.1 port smtps'))
    V("listen-smtps", "listen with smtps (implicit port 465)",
      PKI + L('listen on 127.0.0.1 smtps pki mail.example.org'))
    V("listen-smtps-verify", "listen with smtps verify and a ca",
      PKI + CA + L('listen on 127.0.0.1 smtps verify pki mail.example.org ca mail.example.org'))
    V("listen-tls", "listen with tls and pki", PKI + L('listen on 127.0.0.1 tls pki mail.example.org'))
    V("listen-tls-require", "listen with tls-require", PKI + L('listen on 127.0.0.1 tls-require pki mail.example.org'))
    V("listen-tls-require-verify", "listen with tls-require verify and ca",
      PKI + CA + L('listen on 127.0.0.1 tls-require verify pki mail.example.org ca mail.example.org'))
    V("listen-tls-no-pki", "listen with tls but no pki is accepted by -n", L('listen on 127.0.0.1 tls'))
    V("listen-auth", "listen with tls and auth", PKI + L('listen on 127.0.0.1 port 587 tls-require pki mail.example.org auth'))
    V("listen-auth-table", "listen with auth using a credentials table",
      PKI + f'table creds file:{D}/creds\n' + L('listen on 127.0.0.1 port 587 tls-require pki mail.example.org auth <creds>'))
    V("listen-auth-optional", "listen with auth-optional",
      PKI + L('listen on 127.0.0.1 tls pki mail.example.org auth-optional'))
    V("listen-auth-optional-table", "listen with auth-optional using a table",
      PKI + 'table creds { alice = secret }\n' + L('listen on 127.0.0.1 smtps pki mail.example.org auth-optional <creds>'))
    V("listen-tag", "listen with a tag used by a match rule",
      'listen on 127.0.0.1 tag MSA\naction "a" mbox\nmatch from any for any tag MSA action "a"\n'
      'match from any for any action "a"\n')
    V("listen-tag-32", "tag of exactly 32 characters is accepted",
      L('listen on 127.0.0.1 tag ' + 'T' * 32))
    V("listen-hostname", "listen with hostname", L('listen on 127.0.0.1 hostname mx.example.org'))
    V("listen-hostnames", "listen with a hostnames map",
      f'table hn file:{D}/hostnames\n' + L('listen on 127.0.0.1 hostnames <hn>'))
    V("listen-hostnames-inline", "listen with an inline hostnames map",
      L('listen on 127.0.0.1 hostnames { 127.0.0.1 = mx.example.org }'))
    V("listen-mask-src", "listen with mask-src", L('listen on 127.0.0.1 mask-src'))
    V("listen-received-auth", "listen with received-auth", PKI + L('listen on 127.0.0.1 tls pki mail.example.org auth received-auth'))
    V("listen-no-dsn", "listen with no-dsn", L('listen on 127.0.0.1 no-dsn'))
    V("listen-proxy-v2", "listen with proxy-v2", L('listen on 127.0.0.1 proxy-v2'))
    V("listen-senders", "listen with a senders map",
      PKI + f'table snd file:{D}/senders\n' + L('listen on 127.0.0.1 tls pki mail.example.org auth senders <snd>'))
    V("listen-senders-masquerade", "listen with senders masquerade",
      PKI + 'table snd { alice = alice@example.org }\n' + L('listen on 127.0.0.1 tls pki mail.example.org auth senders <snd> masquerade'))
    V("listen-filter", "listen with a named filter",
      'filter f1 phase connect match !fcrdns disconnect "550 go away"\n' + L('listen on 127.0.0.1 filter f1'))
    V("listen-filter-chain", "listen with an inline filter chain",
      'filter f1 phase connect match !rdns junk\nfilter f2 phase connect match src { 192.0.2.0/24 } reject "550 no"\n'
      + L('listen on 127.0.0.1 filter { f1 f2 }'))
    V("listen-filter-chain-name", "listen referring to a declared chain",
      'filter f1 phase connect match !rdns junk\nfilter f2 phase ehlo match helo regex "^localhost$" reject "550 no"\n'
      'filter ch chain { f1, f2 }\n' + L('listen on 127.0.0.1 filter ch'))
    V("listen-all-options", "listen with many options at once",
      PKI + CA + 'table snd { alice = alice@example.org }\n' +
      L('listen on 127.0.0.1 inet4 port 587 tls-require verify pki mail.example.org ca mail.example.org '
        'auth tag SUB hostname mx.example.org mask-src received-auth no-dsn proxy-v2 senders <snd> masquerade'))
    V("listen-multiple", "several listen statements on different ports",
      PKI + L('listen on lo\nlisten on lo port 587 tls-require pki mail.example.org auth\n'
              'listen on lo port 465 smtps pki mail.example.org auth'))
    V("listen-same-port-tls-plain", "tls and plain listeners on the same address but different ports",
      PKI + L('listen on 127.0.0.1 port 25\nlisten on 127.0.0.1 port 26 tls pki mail.example.org'))
    V("listen-options-order", "listen options in unusual order",
      PKI + L('listen on 127.0.0.1 pki mail.example.org auth-optional tls port 2525 inet4'))

    # ---------------------------------------------------------------- actions
    A = lambda act: act + '\nmatch from any for any action "a"\n'
    V("action-mbox", "mbox delivery", A('action "a" mbox'))
    V("action-maildir", "maildir delivery with default path", A('action "a" maildir'))
    V("action-maildir-junk", "maildir junk", A('action "a" maildir junk'))
    V("action-maildir-path", "maildir with a path and format specifiers",
      A('action "a" maildir "/var/vmail/%{dest.domain:lowercase}/%{dest.user:lowercase}"'))
    V("action-maildir-path-junk", "maildir with path and junk", A('action "a" maildir "~/Maildir" junk'))
    V("action-maildir-home", "maildir under the home directory with ~/",
      A('action "a" maildir "~/Mail/%{rcpt.user}"'))
    V("action-maildir-format-specs", "maildir path with many format specifiers",
      A('action "a" maildir "/srv/%{user.username}/%{rcpt.domain}/%{dest}/%{mbox.from}/%{user.directory}/%{sender.user:lowercase}/%{rcpt:raw}/%{dest.domain:strip}/%{rcpt.user[0]}/%{rcpt.user[2:4]}"'))
    V("action-maildir-bad-format", "format specifiers are not validated by -n",
      A('action "a" maildir "/srv/%{nonsense}/%{unclosed"'))
    V("action-lmtp-tcp", "lmtp to host:port", A('action "a" lmtp "127.0.0.1:24"'))
    V("action-lmtp-unix", "lmtp to a unix socket with rcpt-to",
      A('action "a" lmtp "/var/run/dovecot/lmtp" rcpt-to'))
    V("action-lmtp-bare", "lmtp destination as a bare word", A('action "a" lmtp localhost:24'))
    V("action-mda", "mda command", A('action "a" mda "/usr/bin/procmail -f %{sender}"'))
    V("action-forward-only", "forward-only", A('action "a" forward-only'))
    V("action-expand-only", "expand-only", A('action "a" expand-only'))
    V("action-alias", "local action with alias table",
      'table al { root = admin@example.org }\n' + A('action "a" mbox alias <al>'))
    V("action-virtual", "local action with virtual table",
      f'table vt file:{D}/virtual\n' + A('action "a" maildir virtual <vt>'))
    V("action-userbase", "local action with a userbase table",
      f'table ub file:{D}/userbase\n' + A('action "a" lmtp "/run/lmtp" userbase <ub>'))
    V("action-user", "maildir delivering as a fixed user", A('action "a" maildir "/var/vmail/%{dest.domain}" user nobody'))
    V("action-user-nonexistent", "user that does not exist is not checked by -n", A('action "a" maildir user no_such_user_xyz'))
    V("action-wrapper", "mda wrapper declared and used",
      'mda wrapper spam "/usr/bin/spamc -e %{mda}"\n' + A('action "a" mda "/usr/bin/procmail" wrapper spam'))
    V("action-ttl", "action with ttl", A('action "a" mbox ttl 2d'))
    V("action-ttl-units", "action ttl in seconds, minutes and hours",
      'action "s" mbox ttl 3600s\naction "m" relay ttl 90m\naction "h" maildir ttl 12h\n' + A('action "a" mbox'))
    V("action-local-all-opts", "local action with every local option",
      'table al { root = alice }\ntable ub { alice = 65534:65534:/var/vmail }\nmda wrapper w "/bin/sh -c %{mda}"\n'
      + A('action "a" maildir "~/Maildir" junk alias <al> userbase <ub> user nobody wrapper w ttl 1d'))
    V("action-forward-only-alias", "forward-only with an alias table",
      'table al { root = alice }\n' + A('action "a" forward-only alias <al>'))
    V("action-expand-only-virtual", "expand-only with a virtual table",
      'table vt { "@example.org" = root }\n' + A('action "a" expand-only virtual <vt>'))
    V("action-relay", "plain relay", A('action "a" relay'))
    V("action-relay-helo", "relay with helo", A('action "a" relay helo mx.example.org'))
    V("action-relay-helo-src", "relay with helo-src map",
      f'table hs file:{D}/helo-src\n' + A('action "a" relay helo-src <hs>'))
    V("action-relay-pki-ca", "relay with pki and ca",
      PKI + CA + A('action "a" relay pki mail.example.org ca mail.example.org'))
    V("action-relay-pki-undeclared", "relay pki/ca names are not checked against declared pki/ca",
      A('action "a" relay pki nosuch.example.org ca other.example.org'))
    V("action-relay-src", "relay with a source address list",
      A('action "a" relay src { 192.0.2.1, 192.0.2.2 }'))
    V("action-relay-src-table", "relay with a source address table",
      f'table srcs file:{D}/netaddr\n' + A('action "a" relay src <srcs>'))
    V("action-relay-mail-from", "relay with mail-from", A('action "a" relay mail-from "bounces@example.org"'))
    V("action-relay-backup", "relay backup", A('action "a" relay backup'))
    V("action-relay-backup-mx", "relay backup mx NAME", A('action "a" relay backup mx mx1.example.org'))
    V("action-relay-host-smtp", "relay host smtp://", A('action "a" relay host smtp://mx.example.org'))
    V("action-relay-host-plain", "relay host without scheme", A('action "a" relay host mx.example.org'))
    V("action-relay-host-tls", "relay host smtp+tls:// with label and port",
      'table creds { label1 = "alice:secret" }\n' + A('action "a" relay host smtp+tls://label1@mx.example.org:587 auth <creds>'))
    V("action-relay-host-smtps", "relay host smtps://", A('action "a" relay host smtps://mx.example.org'))
    V("action-relay-host-notls", "relay host smtp+notls://", A('action "a" relay host smtp+notls://mx.example.org:25'))
    V("action-relay-host-lmtp", "relay host lmtp://", A('action "a" relay host lmtp://127.0.0.1:24'))
    V("action-relay-host-ipv6", "relay host with an IPv6 literal", A('action "a" relay host "smtp://[2001:db8::1]:25"'))
    V("action-relay-host-table", "relay host list from a file",
      f'table rh file:{D}/relayhosts-list\ntable creds file:{D}/relay-creds\n' + A('action "a" relay host <rh> auth <creds>'))
    V("action-relay-host-bogus", "relay host URL is not validated by -n",
      A('action "a" relay host "bogus://::::"'))
    V("action-relay-domain", "relay domain map",
      f'table dr file:{D}/domain-relays\n' + A('action "a" relay domain <dr>'))
    V("action-relay-tls", "relay tls", A('action "a" relay tls'))
    V("action-relay-tls-no-verify", "relay tls no-verify", A('action "a" relay host smtp://mx.example.org tls no-verify'))
    V("action-relay-filter", "relay with a named filter (smtp-out)",
      'filter f1 phase connect match rdns report "x"\n' + A('action "a" relay filter f1'))
    V("action-relay-filter-chain", "relay with an inline filter chain",
      'filter f1 phase connect match rdns report "x"\nfilter f2 phase mail-from match mail-from <"<anydestination>"> report "y"\n'
      + A('action "a" relay filter { f1, f2 }'))
    V("action-relay-srs", "relay with srs and an srs key", 'srs key "secret"\n' + A('action "a" relay srs'))
    V("action-relay-all", "relay with many options",
      PKI + CA + 'srs key "k"\ntable creds { label1 = "alice:secret" }\ntable hs { 192.0.2.1 = mx.example.org }\n'
      'filter f1 phase connect match rdns report "x"\n'
      + A('action "a" relay helo mx.example.org helo-src <hs> pki mail.example.org ca mail.example.org '
          'src { 192.0.2.1 } mail-from "b@example.org" host smtp+tls://label1@mx.example.org:587 '
          'tls no-verify auth <creds> filter f1 srs ttl 1d'))
    V("action-many", "many actions, only one used",
      'action "mbox" mbox\naction "maildir" maildir\naction "relay" relay\naction "lmtp" lmtp "/run/lmtp"\n'
      'match from any for any action "mbox"\n')
    V("action-mda-format", "mda command with format specifiers and quotes",
      A('action "a" mda "/usr/lib/dovecot/deliver -f \'%{sender}\' -a \'%{rcpt}\'"'))

    # ---------------------------------------------------------------- match
    R = lambda crit: 'action "a" mbox\nmatch ' + crit + ' action "a"\n'
    V("match-from-any", "from any", R('from any for any'))
    V("match-from-local", "from local", R('from local for any'))
    V("match-from-socket", "from socket", R('from socket for any'))
    V("match-from-src", "from src inline table", R('from src { 192.0.2.0/24, 2001:db8::/32 } for any'))
    V("match-from-src-single", "from src single address", R('from src 192.0.2.1 for any'))
    V("match-from-src-file", "from src file table", f'table n file:{D}/netaddr\n' + R('from src <n> for any'))
    V("match-from-src-regex", "from src regex", R('from src regex "^192\\\\.0\\\\.2\\\\." for any'))
    V("match-from-rdns", "from rdns", R('from rdns for any'))
    V("match-from-rdns-table", "from rdns with a domain table", R('from rdns { example.org, ".example.net" } for any'))
    V("match-from-rdns-regex", "from rdns regex", R('from rdns regex ".*\\\\.example\\\\.org$" for any'))
    V("match-from-auth", "from auth", R('from auth for any'))
    V("match-from-auth-table", "from auth with a user table", R('from auth { alice, bob } for any'))
    V("match-from-auth-regex", "from auth regex", R('from auth regex "^a" for any'))
    V("match-from-mail-from", "from mail-from table", R('from mail-from { alice@example.org, "@example.com" } for any'))
    V("match-from-mail-from-regex", "from mail-from regex", R('from mail-from regex "@example\\\\.org$" for any'))
    V("match-for-any", "for any", R('from any for any'))
    V("match-for-local", "for local", R('from any for local'))
    V("match-for-domain", "for domain list", R('for domain { example.org, "*.example.net" }'))
    V("match-for-domain-regex", "for domain regex", R('for domain regex "^(.*\\\\.)?example\\\\.org$"'))
    V("match-for-rcpt-to", "for rcpt-to table", R('for rcpt-to { alice@example.org }'))
    V("match-for-rcpt-to-regex", "for rcpt-to regex", R('for rcpt-to regex "^postmaster@"'))
    V("match-tag", "tag criterion", R('from any for any tag TAG1'))
    V("match-tag-table", "tag criterion with a file table", f'table t file:{D}/tags\n' + R('from any for any tag <t>'))
    V("match-tag-regex", "tag regex", R('from any for any tag regex "^TAG"'))
    V("match-helo", "helo table", R('from any for any helo { mx.example.org }'))
    V("match-helo-regex", "helo regex", R('from any for any helo regex "\\\\.example\\\\.org$"'))
    V("match-mail-from", "mail-from criterion", R('from any for any mail-from alice@example.org'))
    V("match-mail-from-regex", "mail-from regex criterion", R('from any for any mail-from regex "^a"'))
    V("match-rcpt-to", "rcpt-to criterion", R('from any for any rcpt-to { alice@example.org }'))
    V("match-rcpt-to-regex", "rcpt-to regex criterion", R('from any for any rcpt-to regex "^b"'))
    V("match-tls", "tls criterion", R('from any for any tls'))
    V("match-auth", "auth criterion", R('from any for any auth'))
    V("match-auth-table", "auth table criterion", R('from any for any auth { alice }'))
    V("match-auth-regex", "auth regex criterion", R('from any for any auth regex "^a"'))
    V("match-negations", "every negatable criterion negated",
      R('!from src { 192.0.2.1 } !for domain { example.org } !tag T !helo { h } !mail-from { a@b } '
        '!rcpt-to { c@d } !tls !auth'))
    V("match-negations-2", "negated from auth, from mail-from, regex variants",
      'action "a" mbox\nmatch !from auth { alice } for any action "a"\nmatch !from mail-from regex "x" for any action "a"\n'
      'match from any !for rcpt-to regex "y" action "a"\nmatch !from rdns regex "z" !for domain regex "w" !tag regex "v" action "a"\n'
      'match from any for any !helo regex "u" !mail-from regex "t" !rcpt-to regex "s" !auth regex "r" action "a"\n'
      'match !from local !for local action "a"\nmatch !from any !for any reject\nmatch !from socket for any reject\n')
    V("match-negated-auth-table", "negated auth with a table", R('from any for any !auth { alice }'))
    V("match-all-criteria", "one rule with from, for, tag, helo, mail-from, rcpt-to, tls and auth",
      R('from src { 192.0.2.0/24 } for domain { example.org } tag T helo { h.example.org } '
        'mail-from { a@example.org } rcpt-to { b@example.org } tls auth { alice }'))
    V("match-criteria-order", "criteria in unusual order (for before from)",
      R('tls for any from any'))
    V("match-reject", "reject rules mixed with action rules",
      'action "a" mbox\nmatch from any for domain example.org action "a"\nmatch from any for any reject\n')
    V("match-many-rules", "many match rules using different actions",
      'action "l" mbox\naction "r" relay\nmatch for local action "l"\nmatch from local for any action "r"\n'
      'match from any for domain example.org action "l"\nmatch from auth for any action "r"\nmatch from any for any reject\n')
    V("match-unknown-tag-ok", "a tag that no listener sets is fine", R('from any for any tag NEVERSET'))
    V("match-action-declared-later-rule", "action declared before a later match using it",
      'match from any for any reject\naction "a" mbox\nmatch for local action "a"\n')

    # ---------------------------------------------------------------- filters
    phases_checks = {
        "connect": ["fcrdns", "rdns", "rdns { example.org }", 'rdns regex "x"', "src { 192.0.2.0/24 }", 'src regex "^192"'],
        "helo": ["helo { h.example.org }", 'helo regex "^h"'],
        "ehlo": ["helo { h.example.org }", 'helo regex "^h"'],
        "auth": ["auth", "auth { alice }", 'auth regex "^a"'],
        "mail-from": ["mail-from { a@example.org }", 'mail-from regex "@example"'],
        "rcpt-to": ["rcpt-to { b@example.org }", 'rcpt-to regex "^b"'],
        "data": ["mail-from { a@example.org }", "auth"],
        "commit": ["mail-from { a@example.org }", "auth", "fcrdns"],
    }
    decisions = ['reject "550 rejected"', 'disconnect "421 bye"', 'rewrite "451 retry"', 'report "suspicious"', "junk", "bypass"]
    for ph, checks in phases_checks.items():
        lines = []
        n = 0
        decs = decisions if ph != "commit" else decisions[:4]
        for chk in checks:
            for neg in ("", "!"):
                lines.append('filter f%d phase %s match %s%s %s' % (n, ph, neg, chk, decs[n % len(decs)]))
                n += 1
        names = ", ".join("f%d" % i for i in range(n))
        V("filter-phase-" + ph, "builtin filters in phase %s with every check, negated and not" % ph,
          "\n".join(lines) + "\nlisten on socket filter { %s }\n" % names + M)
    V("filter-global-checks-all-phases", "connect-phase checks (fcrdns/rdns/src) are allowed in every phase",
      "\n".join('filter g%d phase %s match !src regex "^10\\\\." reject "550 no"' % (i, ph)
                for i, ph in enumerate(["connect", "helo", "ehlo", "auth", "mail-from", "rcpt-to", "data", "commit"]))
      + "\n" + M)
    V("filter-helo-in-later-phases", "helo checks are allowed in auth/mail-from/rcpt-to/data/commit",
      "\n".join('filter h%d phase %s match helo { x } reject "550 no"' % (i, ph)
                for i, ph in enumerate(["auth", "mail-from", "rcpt-to", "data", "commit"])) + "\n" + M)
    V("filter-all-decisions", "every decision kind on the connect phase",
      "\n".join('filter d%d phase connect match rdns %s' % (i, d) for i, d in enumerate(decisions)) + "\n" + M)
    V("filter-proc", "proc declaration and a filter using it",
      'proc p1 "/usr/local/bin/filter-rspamd"\nfilter f1 proc p1\nlisten on socket filter f1\n' + M)
    V("filter-proc-options", "proc with user, group and chroot",
      'proc p1 "/usr/local/bin/filter" user nobody group nogroup chroot "/var/empty"\nfilter f1 proc p1\n' + M)
    V("filter-proc-exec", "filter proc-exec with a command",
      'filter f1 proc-exec "/usr/local/bin/filter-senderscore -blockBelow 10"\nlisten on 127.0.0.1 filter f1\n' + M)
    V("filter-proc-exec-options", "filter proc-exec with user, group and chroot",
      'filter f1 proc-exec "/bin/filter" user daemon group daemon chroot "/"\n' + M)
    V("filter-proc-nonexistent-user", "proc user/group that do not exist are not checked by -n",
      'proc p1 "/bin/x" user no_such_user_xyz group no_such_group_xyz\nfilter f1 proc p1\n' + M)
    V("filter-proc-missing-command", "a proc command that does not exist is not checked by -n",
      'proc p1 "/nonexistent/filter"\n' + M)
    V("filter-chain", "a named chain of builtin and proc filters",
      'proc p1 "/bin/p1"\nfilter f1 proc p1\nfilter f2 phase connect match rdns junk\nfilter f3 proc-exec "/bin/p3"\n'
      'filter ch chain { f1, f2, f3 }\nlisten on socket filter ch\n' + M)
    V("filter-chain-newlines", "chain list with a newline between elements instead of a comma",
      'filter f1 phase connect match rdns junk\nfilter f2 phase connect match fcrdns junk\n'
      'filter ch chain { f1\n  f2 }\n' + M)
    V("filter-shared-by-listeners", "same filter used by several listeners and a relay",
      'filter f1 phase connect match rdns junk\nlisten on 127.0.0.1 filter f1\nlisten on ::1 filter f1\n'
      'action "r" relay filter f1\nmatch from any for any action "r"\n')
    V("filter-unused", "filters and procs that are declared but unused",
      'proc p "/bin/p"\nfilter f1 proc p\nfilter f2 phase data match auth reject "550 x"\n' + M)
    V("filter-table-ref", "builtin filter checks using named tables",
      f'table n file:{D}/netaddr\ntable d file:{D}/domains\n'
      'filter f1 phase connect match src <n> bypass\nfilter f2 phase helo match helo <d> reject "550 x"\n' + M)
    V("filter-map-table-ok", "filter checks do not check the table kind (a map is accepted)",
      'table m { a = b }\nfilter f1 phase connect match src <m> bypass\n' + M)

    # ---------------------------------------------------------------- globals
    G = lambda s: s + '\n' + M
    V("smtp-max-message-size", "max-message-size as a number", G('smtp max-message-size 10485760'))
    V("smtp-max-message-size-scaled", "max-message-size with K/M/G suffixes",
      G('smtp max-message-size 512K\nsmtp max-message-size 35M\nsmtp max-message-size 1G\nsmtp max-message-size 1.5M'))
    V("smtp-max-message-size-zero", "max-message-size 0 is accepted", G('smtp max-message-size 0'))
    V("smtp-limit", "smtp limit max-rcpt and max-mails", G('smtp limit max-rcpt 50 max-mails 10'))
    V("smtp-limit-separate", "smtp limit keys on separate lines", G('smtp limit max-rcpt 50\nsmtp limit max-mails 10'))
    V("smtp-sub-addr-delim", "sub-addr-delim with a quoted character", G('smtp sub-addr-delim "-"'))
    V("smtp-sub-addr-delim-bare", "sub-addr-delim with bare punctuation", G('smtp sub-addr-delim _'))
    V("smtp-ciphers", "smtp ciphers", G('smtp ciphers "HIGH:!aNULL:!MD5"'))
    V("smtp-ciphers-bogus", "cipher string is not validated by -n", G('smtp ciphers "NOT-A-CIPHER"'))
    V("queue-compression", "queue compression", G('queue compression'))
    V("queue-encryption-nokey", "queue encryption without a key (prompted at real start)", G('queue encryption'))
    V("queue-encryption-key", "queue encryption with a 32-byte key",
      G('queue encryption 0123456789abcdef0123456789abcdef'))
    V("queue-ttl", "queue ttl", G('queue ttl 5d'))
    V("queue-ttl-units", "queue ttl in seconds, minutes and hours", G('queue ttl 300s\nqueue ttl 90m\nqueue ttl 48h'))
    V("queue-all", "queue compression, encryption and ttl together",
      G('queue compression\nqueue encryption "0123456789abcdef0123456789abcdef"\nqueue ttl 2d'))
    V("bounce-warn-interval", "bounce warn-interval single value", G('bounce warn-interval 1h'))
    V("bounce-warn-interval-list", "bounce warn-interval with four values", G('bounce warn-interval 1h, 6h, 1d, 2d'))
    V("mta-max-deferred", "mta max-deferred", G('mta max-deferred 50'))
    V("mta-limit", "mta limit with several keys",
      G('mta limit max-conn-per-host 5 conn-delay-route 10 session-mail-max 20'))
    V("mta-limit-family", "mta limit inet4 / inet6",
      G('mta limit inet4\nmta limit inet6\nmta limit for domain example.org inet4'))
    V("mta-limit-all-keys", "mta limit with every key",
      G('mta limit max-conn-per-host 10 max-conn-per-route 5 max-conn-per-source 100 max-conn-per-connector 20 '
        'max-conn-per-relay 100 max-conn-per-domain 100 conn-delay-host 0 conn-delay-route 5 conn-delay-source 0 '
        'conn-delay-connector 0 conn-delay-relay 2 conn-delay-domain 0 reconn-delay-route 3 session-mail-max 100 '
        'session-transaction-delay 0 session-keepalive 10 max-failures-per-session 25 task-hiwat 50 task-lowat 30 '
        'task-release 10'))
    V("mta-limit-for-domain", "mta limit for a domain", G('mta limit for domain example.org max-conn-per-host 2'))
    V("mda-limit", "mda limits",
      G('mda limit max-session 10 max-session-per-user 2 task-lowat 10 task-hiwat 20 task-release 5'))
    V("mda-wrapper", "mda wrapper declared but unused", G('mda wrapper w "/usr/bin/wrap %{mda}"'))
    V("scheduler-limit", "scheduler limits",
      G('scheduler limit max-inflight 100 max-evp-batch-size 10 max-msg-batch-size 20 max-schedule 5'))
    V("srs-key", "srs key without any action using it", G('srs key "secret"'))
    V("srs-key-backup", "srs key and backup key", G('srs key "new"\nsrs key backup "old"'))
    V("srs-ttl", "srs ttl in days", G('srs key "k"\nsrs ttl 7d'))
    V("srs-ttl-hours", "srs ttl expressed in hours (>= 1 day)", G('srs ttl 48h'))
    V("admd", "admd string", G('admd "mx.example.org"'))
    V("admd-bare", "admd as a bare word", G('admd example.org'))
    V("globals-all", "every global option in one file",
      G('smtp max-message-size 50M\nsmtp limit max-rcpt 100 max-mails 20\nsmtp sub-addr-delim "+"\n'
        'smtp ciphers "HIGH"\nqueue compression\nqueue ttl 4d\nbounce warn-interval 4h\nmta max-deferred 100\n'
        'mta limit max-conn-per-host 10\nmda limit max-session 50\nmda wrapper w "/bin/w"\n'
        'scheduler limit max-inflight 5000\nsrs key "a"\nsrs key backup "b"\nsrs ttl 4d\nadmd "example.org"'))

    # ---------------------------------------------------------------- realistic
    V("real-debian-default", "Debian's default smtpd.conf",
            '# $OpenBSD: smtpd.conf,v 1.10 2018/05/24 11:40:17 gilles Exp $\n\n'
      '# This is the smtpd server system-wide configuration file.\n# See smtpd.conf(5) for more information.\n\n'
      f'table aliases file:{D}/aliases\n\n'
      '# To accept external mail, replace with: listen on all\n#\nlisten on localhost\n\n'
      'action "local" mbox alias <aliases>\naction "relay" relay\n\n'
      '# Uncomment the following to accept external mail for domain "example.org"\n#\n'
      '# match from any for domain "example.org" action "local"\n'
      'match for local action "local"\nmatch from local for any action "relay"\n')
    V("real-openbsd-example", "the example configuration from smtpd.conf(5)",
      PKI + f'table aliases file:{D}/aliases\ntable secrets file:{D}/relay-creds\n'
      'listen on lo\nlisten on 127.0.0.1 tls pki mail.example.org auth-optional\n'
      'action "local_mail" mbox alias <aliases>\n'
      'action "outbound" relay host smtp+tls://label1@smtp.example.com auth <secrets>\n'
      'match from local for local action "local_mail"\nmatch from local for any action "outbound"\n')
    V("real-virtual-domains", "virtual-domain server with maildir, vmail user and submission",
      PKI + f'table domains file:{D}/domains\ntable virtuals file:{D}/virtual\ntable creds file:{D}/creds\n'
      f'table aliases file:{D}/aliases\n\n'
      'listen on lo\nlisten on 127.0.0.1 port 25 tls pki mail.example.org\n'
      'listen on 127.0.0.1 port 587 tls-require pki mail.example.org auth <creds> tag SUBMISSION\n'
      'listen on 127.0.0.1 port 465 smtps pki mail.example.org auth <creds> tag SUBMISSION\n\n'
      'action "local" maildir alias <aliases>\n'
      'action "virtual" maildir "/var/vmail/%{dest.domain:lowercase}/%{dest.user:lowercase}" virtual <virtuals> user nobody\n'
      'action "outbound" relay helo mail.example.org\n\n'
      'match from any for domain <domains> action "virtual"\nmatch for local action "local"\n'
      'match from any auth for any action "outbound"\nmatch tag SUBMISSION for any action "outbound"\n'
      'match from any for any reject\n')
    V("real-relay-host", "null-client: everything relayed to a smarthost with auth",
      'table secrets { relay1 = "user:password" }\nlisten on lo\n'
      'action "smarthost" relay host smtp+tls://relay1@smtp.example.net:587 auth <secrets> mail-from "@example.org"\n'
      'match from local for any action "smarthost"\n')
    V("real-dovecot-lmtp", "delivery to dovecot via lmtp with rspamd filter",
      PKI + 'filter "rspamd" proc-exec "filter-rspamd"\nfilter "senderscore" proc-exec "filter-senderscore -junkBelow 70"\n'
      'filter check_rdns phase connect match !rdns disconnect "550 no rDNS"\n'
      'filter check_fcrdns phase connect match !fcrdns disconnect "550 no FCrDNS"\n'
      'listen on 127.0.0.1 tls pki mail.example.org filter { check_rdns, check_fcrdns, senderscore, rspamd }\n'
      'listen on 127.0.0.1 port 587 tls-require pki mail.example.org auth filter rspamd\n'
      'action "dovecot" lmtp "/var/run/dovecot/lmtp" rcpt-to virtual { "@example.org" = vmail }\n'
      'action "outbound" relay\nmatch from any for domain example.org action "dovecot"\n'
      'match from local for any action "outbound"\nmatch from any auth for any action "outbound"\n')
    V("real-backup-mx", "backup MX relaying for listed domains",
      'listen on 127.0.0.1\naction "backup" relay backup mx mx2.example.org\naction "local" mbox\n'
      'match for local action "local"\nmatch from any for domain { example.org, example.com } action "backup"\n')
    V("real-macros-heavy", "a full config driven by macros",
      'ip4 = "127.0.0.1"\nme = "mx.example.org"\nlocal_act = "deliver"\nrelay_act = "out"\n'
      'listen on $ip4 hostname $me\naction $local_act maildir\naction $relay_act relay helo $me\n'
      'match for local action $local_act\nmatch from local for any action $relay_act\n')

    # ---------------------------------------------------------------- surprising-but-valid
    V("include-directory", "include of a directory is silently accepted (reads as empty)",
      'include "../data"\n' + M)
    V("pki-cert-not-pem", "-n does not parse the certificate file, only reads it",
      f'pki mail.example.org cert "{D}/aliases"\npki mail.example.org key "{D}/key.pem"\n' + M)
    V("listen-tls-smtps-same-port", "tls and smtps listeners on the same port are accepted",
      PKI + 'listen on 127.0.0.1 port 465 tls pki mail.example.org\nlisten on 127.0.0.1 port 465 smtps pki mail.example.org\n' + M)
    V("filter-chain-proc-twice", "two filters sharing one proc in a chain are accepted (the check never fires)",
      'proc p "/a"\nfilter f1 proc p\nfilter f2 proc p\nfilter c chain { f1, f2 }\n' + M)
    V("table-name-like-builtin", "a user table named localhost does not clash with the builtin <localhost>",
      'table localhost { example.org }\naction "a" mbox\nmatch from any for domain <localhost> action "a"\n')
    V("table-user-name-with-brackets", "a quoted table name may contain angle brackets",
      'table "<mine>" { example.org }\naction "a" mbox\nmatch from any for domain <"<mine>"> action "a"\n')
    V("table-inline-compact", "inline tables without spaces around braces, commas and =",
      'table l {a,b}\ntable m {a=b,c=>d}\naction "a" mbox alias <m>\nmatch from any for domain <l> action "a"\n')
    V("table-file-list-urls", "a '# @list' file of relay URLs (otherwise ':' would make it a map)",
      f'table rh file:{D}/relayhosts-list\n' + 'action "a" relay host <rh>\nmatch from any for any action "a"\n')
    V("continuation-in-comment", "a backslash at the end of a comment continues the comment onto the next line",
      '# comment \\\nthis line is part of the comment\n' + M)
    V("listen-port-keywords-netbase", "port smtp and port smtps use the keyword forms (needs /etc/services)",
      'listen on 127.0.0.1 port smtp\nlisten on ::1 port smtps\n' + M)
    V("size-units-lowercase", "max-message-size scale suffixes are case-insensitive",
      'smtp max-message-size 10m\nsmtp max-message-size 100k\nsmtp max-message-size 1g\n' + M)
    V("pki-key-only-owner", "pki key with mode 0600 owned by root is accepted (see record.sh)",
      f'pki mx.example.org cert "{D}/cert.pem"\npki mx.example.org key "{D}/key.pem"\n' + M)
    V("bounce-five-values", "five comma-separated bounce warn-interval values: extras beyond four are ignored",
      'bounce warn-interval 1h, 2h, 3h, 4h, 5h\n' + M)
    V("pki-name-with-underscore", "pki name with an underscore is accepted",
      f'pki my_host cert "{D}/cert.pem"\npki my_host key "{D}/key.pem"\n' + M)
    V("listen-family-mismatch", "listen on an IPv4 literal with inet6: a warning, but accepted",
      'listen on 127.0.0.1 inet6\n' + M)
    V("listen-short-ipv4", "listen on 127.1 (short IPv4 form) is accepted", 'listen on 127.1\n' + M)
    V("limits-negative", "negative and zero limit values are not range-checked",
      'smtp limit max-rcpt -5 max-mails 0\nmta limit max-conn-per-host -1\nmta max-deferred -1\n'
      'mda limit max-session 0\nscheduler limit max-inflight -3\n' + M)
    V("listen-smtps-port-25", "smtps on port 25 and tls on port 465 are accepted",
      'listen on 127.0.0.1 smtps port 25\nlisten on 127.0.0.1 tls port 465\n' + M)
    V("proc-exec-relative-chroot", "proc-exec chroot is not checked to be absolute",
      'filter f proc-exec "/x" chroot "rel"\n' + M)
    V("globals-repeated", "global options may be repeated; last one wins",
      'queue ttl 1d\nqueue ttl 2d\nsrs ttl 1d\nsrs ttl 2d\nsmtp max-message-size 1M\nsmtp max-message-size 2M\n'
      'admd a\nadmd b\nmta max-deferred 1\nmta max-deferred 2\n' + M)
    V("unchecked-strings", "strings that are not validated by -n: hostname, helo, mail-from, backup mx, tag with space, empty messages",
      'listen on 127.0.0.1 tag "has space" hostname "not a hostname!"\n'
      'action "r" relay helo "bad helo!" mail-from "not-an-address" backup mx "bad mx!"\n'
      'mta limit for domain "bad domain!" inet4\nfilter f phase connect match rdns reject ""\n'
      'action "l" lmtp ""\n' + M)
    V("utf8-strings", "UTF-8 text inside quoted strings and comments",
      '# commentaire é ü ✓\naction "a" mda "echo é ü ✓"\nmatch from any for any action "a"\n')
    V("match-tag-long", "match tag tables are not length-checked (only listener tags are)",
      'action "a" mbox\nmatch from any for any tag "' + 'T' * 40 + '" action "a"\n')
    V("pki-empty-name", "an empty pki name is accepted",
      f'pki "" cert "{D}/cert.pem"\npki "" key "{D}/key.pem"\n' + M)
    V("table-db-big-endian", "db table written on a big-endian machine (db_load -c db_lorder=4321)",
      f'table aliases db:{D}/aliases-be.db\naction "a" mbox alias <aliases>\nmatch from any for any action "a"\n')
    V("table-db-empty", "db table built with makemap from an empty file",
      f'table aliases db:{D}/empty.db\naction "a" mbox alias <aliases>\nmatch from any for any action "a"\n')
