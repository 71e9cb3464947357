# Invalid configurations (real smtpd -n refuses them, exit != 0).
# Each entry: I(short-name, one-line description, body).


def define(c):
    I, M, PKI, CA, D = c["I"], c["M"], c["PKI"], c["CA"], c["D"]

    # ---------------------------------------------------------------- whole file
    I("empty-file", "an empty file has no rules", '')
    I("comments-only", "only comments: no rules", '# nothing\n# at all\n')
    I("no-match-rule", "an action but no match rule", 'action "a" mbox\n')
    I("missing-include-target", "config file includes a missing file", 'include "no-such-file.conf"\n' + M)

    # ---------------------------------------------------------------- lexical
    I("unknown-keyword", "unknown top-level keyword", 'frobnicate yes\n' + M)
    I("typo-action", "typo in a keyword (acton)", 'acton "a" mbox\nmatch from any for any action "a"\n')
    I("typo-maildir", "typo in a delivery method", 'action "a" maildri\nmatch from any for any action "a"\n')
    I("typo-listen", "typo in listen (listn)", 'listn on lo\n' + M)
    I("unterminated-dquote", "unterminated double-quoted string at end of file", M + 'action "b mbox\n')
    I("unterminated-squote", "unterminated single-quoted string at end of file", M + "action 'b mbox\n")
    I("unterminated-brace", "table brace never closed", 'table t { a, b\n' + M)
    I("unterminated-brace-eof", "table brace never closed at end of file", M + 'table t { a, b\n')
    I("extra-close-brace", "stray closing brace", M + '}\n')
    I("keyword-as-table-name", "reserved word used as a table name", 'table alias { a = b }\n' + M)
    I("keyword-as-action-name", "reserved word used as an unquoted action name",
      'action local mbox\nmatch from any for any action local\n')
    I("keyword-as-macro-name", "reserved word used as a macro name", 'table = "x"\n' + M)
    I("keyword-in-table-ref", "reserved word inside a table reference", 'action "a" mbox alias <alias>\nmatch from any for any action "a"\n')
    I("undefined-macro", "use of an undefined macro", 'action $nosuch mbox\n' + M)
    I("undefined-macro-in-match", "undefined macro in a match rule", 'action "a" mbox\nmatch from any for any action $nope\n')
    I("recursive-macro", "macro whose value refers to itself", 'a = "$a"\naction $a mbox\n' + M)
    I("macro-referencing-macro", "macro values are not expanded again (nested $)",
      'x = "a"\ny = "$x"\naction "a" mbox\nmatch from any for any action $y\n')
    I("macro-numeric-value", "macro value that lexes as a number must be quoted", 'n = 100\n' + M)
    I("macro-name-with-space", "quoted macro name containing whitespace", '"my macro" = "x"\n' + M)
    I("macro-no-value", "macro definition without a value", 'x =\n' + M)
    I("dollar-alone", "a lone $ sign", 'action "a" mbox $\nmatch from any for any action "a"\n')
    I("number-too-large", "a number out of range", 'mta max-deferred 99999999999999999999\n' + M)
    I("number-where-string", "a bare number where a name is expected", 'action 123 mbox\nmatch from any for any action 123\n')
    I("bare-absolute-path", "an unquoted absolute path is not a word", f'table t {D}/aliases\n' + M)
    I("nul-in-quotes", "a NUL byte inside a quoted string", 'action "a\0b" mbox\n' + M)
    I("string-too-long", "a quoted string longer than the lexer buffer", 'action "' + 'x' * 9000 + '" mbox\n' + M)
    I("word-too-long", "a bare word longer than the lexer buffer", 'admd ' + 'x' * 9000 + '\n' + M)
    I("two-statements-one-line", "two statements on one line", 'action "a" mbox match from any for any action "a"\n')
    I("continuation-in-comment", "a backslash at the end of a comment continues the comment and swallows the action",
      '# comment \\\naction "a" mbox\nmatch from any for any action "a"\n')
    I("semicolon", "semicolon is not a statement separator", 'action "a" mbox;\nmatch from any for any action "a"\n')

    # ---------------------------------------------------------------- include
    I("include-missing", "include of a nonexistent file", 'include "../data/nope.conf"\n' + M)
    I("include-missing-absolute", "include of a nonexistent absolute path", f'include "{D}/nope.conf"\n' + M)
    I("include-loop", "two files including each other", 'include "../data/loop-a.conf"\n' + M)
    I("include-self-loop", "a file including itself", 'include "../data/self-loop.conf"\n' + M)
    I("include-nested-missing", "an included file includes a missing file", 'include "../data/inc-missing.conf"\n' + M)
    I("include-error-in-file", "error inside an included file is reported with its name and line",
      'include "../data/inc-error.conf"\n' + M)
    I("include-noeol-error", "error on the unterminated last line of an included file",
      'include "../data/inc-noeol-bad.conf"\n' + M)
    I("include-unquoted", "include of an unquoted relative path", 'include ../data/inc-action.conf\n' + M)

    # ---------------------------------------------------------------- tables
    I("table-undefined", "reference to an undefined table", 'action "a" mbox alias <nosuch>\nmatch from any for any action "a"\n')
    I("table-duplicate", "two tables with the same name", 'table t { a }\ntable t { b }\n' + M)
    I("table-duplicate-file", "file table redefining an inline table name",
      f'table t {{ a }}\ntable t file:{D}/domains\n' + M)
    I("table-unknown-backend", "unknown table backend", 'table t nosuchbackend:/x\n' + M)
    I("table-unknown-backend-noarg", "unknown table backend without parameter", 'table t nosuchbackend\n' + M)
    I("table-relative-param", "backend parameter must be an absolute path", 'table t file:../data/aliases\n' + M)
    I("table-missing-file", "file table pointing to a missing file", f'table t file:{D}/nope\n' + M)
    I("table-missing-db", "db table pointing to a missing file", f'table t db:{D}/nope.db\n' + M)
    I("table-db-not-db", "db table pointing to a text file", f'table t db:{D}/aliases\n' + M)
    I("table-bad-map-line", "file map with a line that has no value", f'table t file:{D}/bad-map\n' + M)
    I("table-list-as-alias", "a list table used where a map is required (alias)",
      'table t { a, b }\naction "a" mbox alias <t>\nmatch from any for any action "a"\n')
    I("table-list-as-virtual", "a list table used as virtual", 'table t { a }\naction "a" mbox virtual <t>\nmatch from any for any action "a"\n')
    I("table-list-as-userbase", "a list table used as userbase", 'table t { a }\naction "a" mbox userbase <t>\nmatch from any for any action "a"\n')
    I("table-list-file-as-alias", "a list file table used as alias",
      f'table t file:{D}/domains\naction "a" mbox alias <t>\nmatch from any for any action "a"\n')
    I("table-map-as-domain", "a map used where a list is required (for domain)",
      'table t { a = b }\naction "a" mbox\nmatch from any for domain <t> action "a"\n')
    I("table-map-as-src", "a map used as a from src table", 'table t { a = b }\naction "a" mbox\nmatch from src <t> for any action "a"\n')
    I("table-map-as-relay-src", "a map used as relay src", 'table t { a = b }\naction "a" relay src <t>\nmatch from any for any action "a"\n')
    I("table-map-as-host", "a map used as relay host", 'table t { a = b }\naction "a" relay host <t>\nmatch from any for any action "a"\n')
    I("table-list-as-domain-relay", "a list used as relay domain", 'table t { a }\naction "a" relay domain <t>\nmatch from any for any action "a"\n')
    I("table-list-as-helo-src", "a list used as helo-src", 'action "a" relay helo-src { a }\nmatch from any for any action "a"\n')
    I("table-list-as-hostnames", "a list used as listen hostnames", 'listen on 127.0.0.1 hostnames { a }\n' + M)
    I("table-list-as-senders", "a list used as listen senders", 'listen on 127.0.0.1 senders { a }\n' + M)
    I("table-list-as-senders-masq", "a list used as listen senders masquerade", 'listen on 127.0.0.1 senders { a } masquerade\n' + M)
    I("table-map-as-tag", "a map used as match tag table", 'action "a" mbox\nmatch from any for any tag { a = b } action "a"\n')
    I("table-map-as-helo", "a map used as match helo table", 'action "a" mbox\nmatch from any for any helo { a = b } action "a"\n')
    I("table-map-as-mail-from", "a map used as match mail-from table", 'action "a" mbox\nmatch from any for any mail-from { a = b } action "a"\n')
    I("table-map-as-rcpt-to", "a map used as match rcpt-to table", 'action "a" mbox\nmatch from any for any rcpt-to { a = b } action "a"\n')
    I("table-map-as-auth", "a map used as match auth table", 'action "a" mbox\nmatch from any for any auth { a = b } action "a"\n')
    I("table-map-as-from-auth", "a map used as from auth table", 'action "a" mbox\nmatch from auth { a = b } for any action "a"\n')
    I("table-map-as-from-mail-from", "a map used as from mail-from table", 'action "a" mbox\nmatch from mail-from { a = b } for any action "a"\n')
    I("table-map-as-rdns", "a map used as from rdns table", 'action "a" mbox\nmatch from rdns { a = b } for any action "a"\n')
    I("table-map-as-for-rcpt-to", "a map used as for rcpt-to table", 'action "a" mbox\nmatch for rcpt-to { a = b } action "a"\n')
    I("table-map-as-regex", "a map used as a regex table", 'action "a" mbox\nmatch from any for domain regex { a = b } action "a"\n')
    I("table-map-as-src-regex", "a map used as from src regex", 'action "a" mbox\nmatch from src regex { a = b } for any action "a"\n')
    I("table-map-as-tag-regex", "a map used as tag regex", 'action "a" mbox\nmatch from any for any tag regex { a = b } action "a"\n')
    I("table-inline-mixed", "inline table mixing list and map entries", 'table t { a, b = c }\n' + M)
    I("table-inline-mixed-2", "inline table mixing map and list entries", 'table t { b = c, a }\n' + M)
    I("table-inline-empty", "empty inline table", 'table t { }\n' + M)
    I("table-no-backend", "table with a name only", 'table t\n' + M)
    I("table-getpwnam-as-alias", "getpwnam table used as alias", 'action "a" mbox alias <getpwnam>\nmatch from any for any action "a"\n')
    I("table-ref-unclosed", "table reference without closing >", 'action "a" mbox alias <al\nmatch from any for any action "a"\n')
    I("table-dynamic-number", "anonymous tables are numbered: error names <dynamic:N>",
      'action "a" mbox\nmatch from src { 127.0.0.1 } for domain { a = b } action "a"\n')

    # ---------------------------------------------------------------- pki / ca
    I("pki-bad-name", "pki name that is not a valid domain", f'pki "bad name!" cert "{D}/cert.pem"\n' + M)
    I("pki-bad-dhe", "invalid dhe keyword", PKI + 'pki mail.example.org dhe sometimes\n' + M)
    I("pki-missing-key", "pki with a cert but no key", f'pki mail.example.org cert "{D}/cert.pem"\n' + M)
    I("pki-missing-cert", "pki with a key but no cert", f'pki mail.example.org key "{D}/key.pem"\n' + M)
    I("pki-cert-not-found", "pki cert file does not exist", f'pki mail.example.org cert "{D}/nope.pem"\npki mail.example.org key "{D}/key.pem"\n' + M)
    I("pki-key-not-found", "pki key file does not exist", f'pki mail.example.org cert "{D}/cert.pem"\npki mail.example.org key "{D}/nope.pem"\n' + M)
    I("pki-key-insecure", "pki key file with mode 0644", f'pki mail.example.org cert "{D}/cert.pem"\npki mail.example.org key "{D}/insecure-key.pem"\n' + M)
    I("pki-key-is-cert", "pki key that is not a key", f'pki mail.example.org cert "{D}/cert.pem"\npki mail.example.org key "{D}/cert-as-key.pem"\n' + M)
    I("pki-no-params", "pki with no parameters", 'pki mail.example.org\n' + M)
    I("ca-not-found", "ca file does not exist", f'ca mail.example.org cert "{D}/nope.pem"\n' + M)
    I("ca-bad-name", "ca name that is not a valid domain", f'ca "-bad-" cert "{D}/ca.pem"\n' + M)
    I("ca-no-cert", "ca without cert parameter", 'ca mail.example.org\n' + M)
    I("ca-key-param", "ca does not accept a key parameter", f'ca mail.example.org key "{D}/key.pem"\n' + M)

    # ---------------------------------------------------------------- listen
    L = lambda s: s + '\n' + M
    I("listen-any-keyword", "listen on any (any is a keyword)", L('listen on any'))
    I("listen-bad-interface", "listen on an unknown interface name", L('listen on nosuchif0.invalid'))
    I("listen-no-address", "listen on without an address", L('listen on'))
    I("listen-port-zero", "port 0 is invalid", L('listen on 127.0.0.1 port 0'))
    I("listen-port-too-big", "port 65536 is invalid", L('listen on 127.0.0.1 port 65536'))
    I("listen-port-negative", "negative port", L('listen on 127.0.0.1 port -25'))
    I("listen-port-unknown-name", "unknown service name", L('listen on 127.0.0.1 port nosuchservice'))
    I("listen-port-quoted-number", "quoted port number is looked up as a service name", L('listen on 127.0.0.1 port "25"'))
    I("listen-port-twice", "port given twice", L('listen on 127.0.0.1 port 25 port 26'))
    I("listen-family-twice", "address family given twice", L('listen on 127.0.0.1 inet4 inet6'))
    I("listen-tls-twice", "tls mode given twice", L('listen on 127.0.0.1 tls tls-require'))
    I("listen-smtps-tls", "smtps and tls together", L('listen on 127.0.0.1 smtps tls'))
    I("listen-pki-twice", "pki given twice", PKI + L('listen on 127.0.0.1 tls pki mail.example.org pki mail.example.org'))
    I("listen-ca-twice", "ca given twice", PKI + CA + L('listen on 127.0.0.1 tls pki mail.example.org ca mail.example.org ca mail.example.org'))
    I("listen-auth-twice", "auth given twice", PKI + L('listen on 127.0.0.1 tls pki mail.example.org auth auth'))
    I("listen-auth-and-optional", "auth and auth-optional together", PKI + L('listen on 127.0.0.1 tls pki mail.example.org auth auth-optional'))
    I("listen-tag-twice", "tag given twice", L('listen on 127.0.0.1 tag A tag B'))
    I("listen-tag-too-long", "tag of 33 characters", L('listen on 127.0.0.1 tag ' + 'T' * 33))
    I("listen-socket-tag-too-long", "socket tag of 33 characters", L('listen on socket tag ' + 'T' * 33))
    I("listen-socket-tag-twice", "socket tag given twice", L('listen on socket tag A tag B'))
    I("listen-socket-mask-src-twice", "socket mask-src given twice", L('listen on socket mask-src mask-src'))
    I("listen-socket-filter-twice", "socket filter given twice",
      'filter f phase connect match rdns junk\n' + L('listen on socket filter f filter f'))
    I("listen-socket-twice", "two socket listeners", L('listen on socket\nlisten on socket'))
    I("listen-socket-bad-option", "socket listener does not accept port", L('listen on socket port 25'))
    I("listen-hostname-twice", "hostname given twice", L('listen on 127.0.0.1 hostname a hostname b'))
    I("listen-hostnames-twice", "hostnames given twice", L('listen on 127.0.0.1 hostnames { a = b } hostnames { c = d }'))
    I("listen-mask-src-twice", "mask-src given twice", L('listen on 127.0.0.1 mask-src mask-src'))
    I("listen-received-auth-twice", "received-auth given twice", L('listen on 127.0.0.1 received-auth received-auth'))
    I("listen-no-dsn-twice", "no-dsn given twice", L('listen on 127.0.0.1 no-dsn no-dsn'))
    I("listen-proxy-v2-twice", "proxy-v2 given twice", L('listen on 127.0.0.1 proxy-v2 proxy-v2'))
    I("listen-senders-twice", "senders given twice", L('listen on 127.0.0.1 senders { a = b } senders { c = d }'))
    I("listen-filter-twice", "filter given twice", 'filter f phase connect match rdns junk\n' + L('listen on 127.0.0.1 filter f filter f'))
    I("listen-filter-undefined", "unknown filter name", L('listen on 127.0.0.1 filter nosuch'))
    I("listen-filter-chain-undefined", "unknown filter inside an inline chain", L('listen on 127.0.0.1 filter { nosuch }'))
    I("listen-pki-undefined", "unknown pki name", L('listen on 127.0.0.1 tls pki nosuch.example.org'))
    I("listen-ca-undefined", "unknown ca name", PKI + L('listen on 127.0.0.1 tls pki mail.example.org ca nosuch.example.org'))
    I("listen-auth-no-tls", "auth requires tls or smtps", L('listen on 127.0.0.1 auth'))
    I("listen-auth-optional-no-tls", "auth-optional requires tls or smtps", L('listen on 127.0.0.1 auth-optional'))
    I("listen-pki-no-tls", "pki requires tls or smtps", PKI + L('listen on 127.0.0.1 pki mail.example.org'))
    I("listen-unknown-option", "unknown listen option", L('listen on 127.0.0.1 compress'))
    I("listen-masquerade-alone", "masquerade without senders", L('listen on 127.0.0.1 masquerade'))
    I("listen-verify-alone", "verify without smtps/tls-require", L('listen on 127.0.0.1 tls verify'))
    I("listen-senders-undefined", "senders with an undefined table", L('listen on 127.0.0.1 senders <nosuch>'))

    # ---------------------------------------------------------------- actions
    A = lambda act: act + '\nmatch from any for any action "a"\n'
    I("action-duplicate", "two actions with the same name", 'action "a" mbox\n' + A('action "a" maildir'))
    I("action-no-method", "action without a delivery method", A('action "a"'))
    I("action-unknown-method", "unknown delivery method", A('action "a" deliver'))
    I("action-user-mbox", "user with mbox", A('action "a" mbox user nobody'))
    I("action-user-forward-only", "user with forward-only", A('action "a" forward-only user nobody'))
    I("action-user-expand-only", "user with expand-only", A('action "a" expand-only user nobody'))
    I("action-user-twice", "user given twice", A('action "a" maildir user nobody user daemon'))
    I("action-alias-twice", "alias given twice", 'table t { a = b }\n' + A('action "a" mbox alias <t> alias <t>'))
    I("action-virtual-twice", "virtual given twice", 'table t { a = b }\n' + A('action "a" mbox virtual <t> virtual <t>'))
    I("action-alias-then-virtual", "alias and virtual together", 'table t { a = b }\n' + A('action "a" mbox alias <t> virtual <t>'))
    I("action-virtual-then-alias", "virtual and alias together", 'table t { a = b }\n' + A('action "a" mbox virtual <t> alias <t>'))
    I("action-userbase-twice", "userbase given twice", 'table t { a = b }\n' + A('action "a" mbox userbase <t> userbase <t>'))
    I("action-wrapper-undefined", "unknown mda wrapper", A('action "a" mda "x" wrapper nosuch'))
    I("action-wrapper-duplicate", "mda wrapper declared twice", 'mda wrapper w "a"\nmda wrapper w "b"\n' + A('action "a" mbox'))
    I("action-ttl-twice", "ttl given twice", A('action "a" mbox ttl 1d ttl 2d'))
    I("action-ttl-invalid", "invalid ttl unit", A('action "a" mbox ttl 1w'))
    I("action-ttl-no-unit", "ttl without unit (a number)", A('action "a" mbox ttl 10'))
    I("action-ttl-zero", "ttl of zero", A('action "a" mbox ttl 0d'))
    I("action-ttl-before-option", "ttl must come after the method options", 'table t { a = b }\n' + A('action "a" mbox ttl 1d alias <t>'))
    I("action-lmtp-no-dest", "lmtp without destination", A('action "a" lmtp'))
    I("action-mda-no-cmd", "mda without command", A('action "a" mda'))
    I("action-local-opt-on-relay", "alias is not a relay option", 'table t { a = b }\n' + A('action "a" relay alias <t>'))
    I("action-relay-opt-on-local", "helo is not a local option", A('action "a" mbox helo mx.example.org'))
    I("action-relay-helo-twice", "relay helo twice", A('action "a" relay helo a helo b'))
    I("action-relay-helo-src-twice", "relay helo-src twice", A('action "a" relay helo-src { a = b } helo-src { a = b }'))
    I("action-relay-pki-twice", "relay pki twice", A('action "a" relay pki a pki b'))
    I("action-relay-ca-twice", "relay ca twice", A('action "a" relay ca a ca b'))
    I("action-relay-src-twice", "relay src twice", A('action "a" relay src 192.0.2.1 src 192.0.2.2'))
    I("action-relay-mail-from-twice", "relay mail-from twice", A('action "a" relay mail-from a@b mail-from c@d'))
    I("action-relay-backup-twice", "relay backup twice", A('action "a" relay backup backup'))
    I("action-relay-backup-mx-twice", "relay backup mx twice", A('action "a" relay backup mx a backup mx b'))
    I("action-relay-backup-host", "relay backup with host", A('action "a" relay backup host smtp://x'))
    I("action-relay-host-backup", "relay host with backup", A('action "a" relay host smtp://x backup'))
    I("action-relay-host-backup-mx", "relay host with backup mx", A('action "a" relay host smtp://x backup mx y'))
    I("action-relay-backup-domain", "relay backup with domain", A('action "a" relay backup domain { a = b }'))
    I("action-relay-host-twice", "relay host twice", A('action "a" relay host smtp://a host smtp://b'))
    I("action-relay-host-domain", "relay host with domain", A('action "a" relay host smtp://a domain { a = b }'))
    I("action-relay-tls-twice", "relay tls twice", A('action "a" relay tls tls'))
    I("action-relay-tls-no-verify-twice", "relay tls then tls no-verify", A('action "a" relay tls tls no-verify'))
    I("action-relay-auth-no-host", "relay auth without host", 'table c { a = b }\n' + A('action "a" relay auth <c>'))
    I("action-relay-auth-before-host", "relay auth before host", 'table c { a = b }\n' + A('action "a" relay auth <c> host smtp://x'))
    I("action-relay-auth-list", "relay auth with a list table", A('action "a" relay host smtp://x auth { a }'))
    I("action-relay-auth-twice", "relay auth twice", 'table c { a = b }\n' + A('action "a" relay host smtp://x auth <c> auth <c>'))
    I("action-relay-filter-twice", "relay filter twice", 'filter f phase connect match rdns junk\n' + A('action "a" relay filter f filter f'))
    I("action-relay-filter-undefined", "relay filter undefined", A('action "a" relay filter nosuch'))
    I("action-relay-srs-no-key", "relay srs without srs key", A('action "a" relay srs'))
    I("action-relay-srs-twice", "relay srs twice", 'srs key "k"\n' + A('action "a" relay srs srs'))
    I("action-relay-srs-key-after", "srs key declared after the action using srs", A('action "a" relay srs') + 'srs key "k"\n')
    I("action-name-missing", "action keyword with only a method", A('action mbox'))

    # ---------------------------------------------------------------- match
    R = lambda crit: 'action "a" mbox\nmatch ' + crit + ' action "a"\n'
    I("match-undefined-action", "match refers to an unknown action", 'action "a" mbox\nmatch from any for any action "b"\n')
    I("match-action-before-decl", "action used before it is declared", 'match from any for any action "a"\naction "a" mbox\n')
    I("match-no-decision", "match without action or reject", 'action "a" mbox\nmatch from any for any\n')
    I("match-action-and-reject", "match with both action and reject", 'action "a" mbox\nmatch from any for any action "a" reject\n')
    I("match-from-twice", "from given twice", R('from any from local for any'))
    I("match-from-src-and-auth", "from src then from auth", R('from src 127.0.0.1 from auth for any'))
    I("match-for-twice", "for given twice", R('from any for any for local'))
    I("match-tag-twice", "tag given twice", R('from any for any tag A tag B'))
    I("match-tag-regex-twice", "tag then tag regex", R('from any for any tag A tag regex "B"'))
    I("match-helo-twice", "helo given twice", R('from any for any helo a helo b'))
    I("match-tls-twice", "tls given twice", R('from any for any tls !tls'))
    I("match-auth-twice", "auth given twice", R('from any for any auth auth'))
    I("match-auth-table-twice", "auth then auth table", R('from any for any auth auth { a }'))
    I("match-mail-from-twice", "mail-from given twice", R('from any for any mail-from a@b mail-from regex "c"'))
    I("match-rcpt-to-twice", "rcpt-to given twice", R('from any for any rcpt-to a@b rcpt-to c@d'))
    I("match-from-mail-from-and-mail-from", "from mail-from combined with mail-from", R('from mail-from a@b for any mail-from c@d'))
    I("match-for-rcpt-to-and-rcpt-to", "for rcpt-to combined with rcpt-to", R('from any for rcpt-to a@b rcpt-to c@d'))
    I("match-from-auth-and-auth", "from auth combined with auth", R('from auth for any auth'))
    I("match-unknown-criterion", "unknown criterion", R('from any for any color blue'))
    I("match-from-unknown", "unknown from kind", R('from everywhere for any'))
    I("match-double-negation", "double negation", R('!!from any for any'))
    I("match-negate-action", "negation before action", 'action "a" mbox\nmatch from any for any !action "a"\n')
    I("match-from-src-undefined", "from src with an undefined table", R('from src <nosuch> for any'))
    I("match-domain-regex-no-table", "for domain regex without argument", R('for domain regex'))

    # ---------------------------------------------------------------- filters
    I("filter-duplicate", "two filters with the same name",
      'filter f phase connect match rdns junk\nfilter f phase connect match fcrdns junk\n' + M)
    I("filter-proc-undefined", "filter referring to an unknown proc", 'filter f proc nosuch\n' + M)
    I("filter-proc-duplicate", "two procs with the same name", 'proc p "/a"\nproc p "/b"\n' + M)
    I("filter-proc-user-twice", "proc user given twice", 'proc p "/a" user nobody user daemon\n' + M)
    I("filter-proc-group-twice", "proc group given twice", 'proc p "/a" group daemon group daemon\n' + M)
    I("filter-proc-chroot-twice", "proc chroot given twice", 'proc p "/a" chroot "/" chroot "/"\n' + M)
    I("filter-proc-exec-user-twice", "proc-exec user given twice", 'filter f proc-exec "/a" user nobody user nobody\n' + M)
    I("filter-proc-exec-duplicate", "proc-exec filter name reused", 'filter f phase connect match rdns junk\nfilter f proc-exec "/a"\n' + M)
    I("filter-chain-duplicate-name", "chain name reused", 'filter f phase connect match rdns junk\nfilter f chain { f }\n' + M)
    I("filter-chain-undefined", "chain with an unknown filter", 'filter c chain { nosuch }\n' + M)
    I("filter-chain-in-chain", "chain inside a chain",
      'filter f phase connect match rdns junk\nfilter c1 chain { f }\nfilter c2 chain { c1 }\n' + M)
    I("filter-chain-twice", "same filter twice in a chain", 'filter f phase connect match rdns junk\nfilter c chain { f, f }\n' + M)
    I("filter-listen-chain-twice", "same filter twice in an inline listen chain",
      'filter f phase connect match rdns junk\nlisten on 127.0.0.1 filter { f, f }\n' + M)
    I("filter-listen-chain-in-chain", "named chain inside an inline listen chain",
      'filter f phase connect match rdns junk\nfilter c chain { f }\nlisten on 127.0.0.1 filter { c }\n' + M)
    I("filter-unknown-phase", "unknown filter phase", 'filter f phase quit match rdns junk\n' + M)
    I("filter-data-line-phase", "data-line phase is reserved but not allowed", 'filter f phase data-line match rdns junk\n' + M)
    I("filter-no-match-keyword", "builtin filter without match keyword", 'filter f phase connect rdns junk\n' + M)
    I("filter-no-check", "builtin filter without a check", 'filter f phase connect match junk\n' + M)
    I("filter-two-checks", "builtin filter with two checks", 'filter f phase connect match rdns fcrdns junk\n' + M)
    I("filter-no-decision", "builtin filter without a decision", 'filter f phase connect match rdns\n' + M)
    I("filter-reject-no-message", "reject decision without a message", 'filter f phase connect match rdns reject\n' + M)
    I("filter-helo-in-connect", "helo check in the connect phase", 'filter f phase connect match helo { a } junk\n' + M)
    I("filter-auth-in-helo", "auth check in the helo phase", 'filter f phase helo match auth junk\n' + M)
    I("filter-mail-from-in-auth", "mail-from check in the auth phase", 'filter f phase auth match mail-from { a } junk\n' + M)
    I("filter-rcpt-to-in-mail-from", "rcpt-to check in the mail-from phase", 'filter f phase mail-from match rcpt-to { a } junk\n' + M)
    I("filter-rcpt-to-in-data", "rcpt-to check in the data phase", 'filter f phase data match rcpt-to { a } junk\n' + M)
    I("filter-rcpt-to-in-commit", "rcpt-to check in the commit phase", 'filter f phase commit match rcpt-to { a } reject "550 x"\n' + M)
    I("filter-junk-on-commit", "junk decision in the commit phase", 'filter f phase commit match rdns junk\n' + M)
    I("filter-bypass-on-commit", "bypass decision in the commit phase", 'filter f phase commit match rdns bypass\n' + M)
    I("filter-fcrdns-table", "fcrdns does not take a table", 'filter f phase connect match fcrdns { a } junk\n' + M)
    I("filter-negated-decision", "negation in front of the decision", 'filter f phase connect match rdns !junk\n' + M)
    I("filter-bare-name", "filter with no type", 'filter f\n' + M)
    I("filter-table-undefined", "filter check with an undefined table", 'filter f phase connect match src <nosuch> junk\n' + M)

    # ---------------------------------------------------------------- globals
    G = lambda s: s + '\n' + M
    I("size-invalid-suffix", "max-message-size with a bad suffix", G('smtp max-message-size 10X'))
    I("size-negative", "negative max-message-size", G('smtp max-message-size -1'))
    I("size-word", "max-message-size with a word", G('smtp max-message-size big'))
    I("size-overflow", "max-message-size overflowing when scaled", G('smtp max-message-size 99999999999999E'))
    I("smtp-limit-unknown", "unknown smtp limit keyword", G('smtp limit max-foo 10'))
    I("smtp-limit-no-value", "smtp limit without a value", G('smtp limit max-rcpt'))
    I("sub-addr-delim-two-chars", "sub-addr-delim longer than one character", G('smtp sub-addr-delim "++"'))
    I("sub-addr-delim-space", "sub-addr-delim is a space", G('smtp sub-addr-delim " "'))
    I("sub-addr-delim-at", "sub-addr-delim is @", G('smtp sub-addr-delim "@"'))
    I("sub-addr-delim-empty", "sub-addr-delim is empty", G('smtp sub-addr-delim ""'))
    I("sub-addr-delim-dash", "an unquoted - is lexed as a lone minus sign", G('smtp sub-addr-delim -'))
    I("smtp-unknown-option", "unknown smtp option", G('smtp max-recipients 10'))
    I("queue-encryption-short-key", "queue encryption key of the wrong length", G('queue encryption "0123456789abcdef"'))
    I("queue-encryption-stdin", "queue encryption stdin cannot be read with -n", G('queue encryption stdin'))
    I("queue-encryption-dash", "queue encryption - means stdin", G('queue encryption "-"'))
    I("queue-ttl-no-unit", "queue ttl without a unit", G('queue ttl 10'))
    I("queue-ttl-bad-unit", "queue ttl with an unknown unit", G('queue ttl 4w'))
    I("queue-ttl-zero", "queue ttl of zero (message shows the digits only)", G('queue ttl 0s'))
    I("queue-ttl-word", "queue ttl with a word", G('queue ttl forever'))
    I("queue-ttl-overflow", "queue ttl too large", G('queue ttl 9999999999d'))
    I("queue-unknown-option", "unknown queue option", G('queue size 10'))
    I("bounce-bad-delay", "invalid bounce warn-interval delay", G('bounce warn-interval 4x'))
    I("bounce-too-many", "five space-separated bounce warn-interval values (commas are required)", G('bounce warn-interval 1h 2h 3h 4h 5h'))
    I("bounce-no-value", "bounce warn-interval without values", G('bounce warn-interval'))
    I("mta-limit-unknown", "unknown mta limit keyword", G('mta limit max-foo 10'))
    I("mta-limit-for-domain-unknown", "unknown mta limit keyword for a domain", G('mta limit for domain example.org bogus 1'))
    I("mta-max-deferred-word", "mta max-deferred with a word", G('mta max-deferred lots'))
    I("mda-limit-unknown", "unknown mda limit keyword (reported as scheduler)", G('mda limit max-foo 10'))
    I("scheduler-limit-unknown", "unknown scheduler limit keyword", G('scheduler limit max-foo 10'))
    I("srs-ttl-too-short", "srs ttl shorter than a day", G('srs ttl 23h'))
    I("srs-ttl-invalid", "srs ttl invalid", G('srs ttl soon'))
    I("srs-key-missing-value", "srs key without value", G('srs key'))
    I("admd-nonprintable", "admd with a tab character", G('admd "a\tb"'))
    I("admd-no-value", "admd without a value", G('admd'))

    # ---------------------------------------------------------------- several errors
    I("multi-errors-order", "several independent errors are all reported in file order",
      'frobnicate\naction "a" mbox user nobody\nlisten on 127.0.0.1 port 0\nsmtp max-message-size 10X\n'
      'match from any for any action "zz"\n')
    I("multi-errors-no-rules", "errors that remove every match rule also print the no-rules warning",
      'action "a" mbox\nmatch from any for any action "b"\nmatch from any for any action "c"\n')
    I("multi-errors-then-fatal", "yacc errors are printed before a later fatal listener error",
      'bogus line\nlisten on 127.0.0.1 auth\n' + M)
    I("multi-errors-then-pki", "pki load failure is not reached when parsing fails",
      f'pki mail.example.org cert "{D}/nope.pem"\npki mail.example.org key "{D}/key.pem"\nbogus\n' + M)
    I("multi-errors-continue-after-brace", "an error inside a multi-line table is reported on a later line",
      'table t {\n  a,\n  b = c\n}\n' + M)
    I("multi-errors-macro-then-syntax", "undefined macro followed by more errors",
      'action $nope mbox\naction "a" mbox\nmatch from any for any action "b"\nmatch from any for any action "a"\n')
    I("multi-errors-fatal-table-first", "a fatal unknown-backend error stops before later errors",
      'table t nosuch:/x\nbogus\n' + M)
    I("multi-errors-number-recovery", "an invalid number error also swallows the following line",
      'mta max-deferred 99999999999999999999\naction "a" mbox\nmatch from any for any action "a"\n')

    # ---------------------------------------------------------------- more lexical / table layout
    I("table-newline-after-brace", "a newline directly after { is a syntax error", 'table t {\n  a }\n' + M)
    I("table-newline-before-brace", "a newline directly before } is a syntax error", 'table t { a\n}\n' + M)
    I("table-comma-newline", "a comma followed by a newline is a syntax error", 'table t { a,\n  b }\n' + M)
    I("table-double-comma", "two commas in a row", 'table t { a,, b }\n' + M)
    I("table-double-equals", "== in an inline map", 'table t { a == b }\n' + M)
    I("table-multiline-classic", "the usual multi-line brace layout is rejected",
      'table t {\n  a = b,\n  c = d\n}\naction "a" mbox alias <t>\nmatch from any for any action "a"\n')
    I("builtin-table-unquoted", "<localhost> looks up a table named localhost, not the builtin",
      'action "a" mbox\nmatch from src <localhost> for any action "a"\n')
    I("builtin-getpwnam-unquoted", "<getpwnam> is not the builtin getpwnam table",
      'action "a" maildir userbase <getpwnam>\nmatch from any for any action "a"\n')
    I("bounce-no-commas", "bounce warn-interval values must be comma-separated", 'bounce warn-interval 1h 2h\n' + M)
    I("bareword-leading-dot", "a bare word cannot start with a dot",
      'action "a" mbox\nmatch from rdns { .example.org } for any action "a"\n')
    I("bareword-leading-at", "a bare word cannot start with @",
      'action "a" mbox\nmatch from any for any mail-from @example.org action "a"\n')
    I("file-table-url-map", "a file of relay URLs without '# @list' is a map (':' separator), not a host list",
      f'table rh file:{D}/relayhosts\naction "a" relay host <rh>\nmatch from any for any action "a"\n')
    I("builtin-localnames-as-alias", "builtin <localnames> is a list and cannot be an alias map",
      'action "a" mbox alias <"<localnames>">\nmatch from any for any action "a"\n')
    I("quoted-number-max-deferred", "a quoted number in mta max-deferred is a string, not a number",
      'mta max-deferred "10"\n' + M)
    I("listen-port-bad-name-quoted", "listen on lo with an unknown quoted service name",
      'listen on lo port "smtp-bogus"\n' + M)
    I("table-midrule-created", "a syntax error after 'table NAME' still creates an empty table NAME",
      f'table a {D}/aliases\naction "a" mbox alias <a>\nmatch from any for any action "a"\n')
    I("ttl-in-match", "ttl is not a match option", 'action "a" mbox\nmatch from any for any ttl 1d action "a"\n')
    I("listen-on-socket-filter-undefined", "listen on socket with an unknown filter",
      'listen on socket filter nosuch\n' + M)
    I("relay-host-list-table-as-domain", "relay domain with an inline list",
      'action "a" relay domain { example.org }\nmatch from any for any action "a"\n')
    I("macro-dash-value", "a macro value is re-lexed: \"-\" becomes a lone minus sign",
      'd = "-"\nsmtp sub-addr-delim $d\n' + M)
    I("listen-address-with-space", "a quoted address with a trailing space is not an address or interface",
      'listen on "127.0.0.1 "\n' + M)
    I("listen-cidr", "listen on a CIDR prefix is not accepted", 'listen on 127.0.0.1/8\n' + M)
    I("listen-bracketed-ipv6", "listen on a bracketed IPv6 literal is not accepted", 'listen on "[::1]"\n' + M)
    I("listen-interface-case", "interface names are case-sensitive (LO is not lo)", 'listen on LO\n' + M)
    I("proc-user-no-value", "proc user without a value", 'proc p "/x" user\n' + M)
    I("builtin-getpwnam-as-alias", "builtin <getpwnam> cannot be an alias map",
      'action "a" maildir alias <"<getpwnam>">\nmatch from any for any action "a"\n')
    I("sub-addr-delim-escape", "a backslash escape other than quote/space/tab is kept as two characters",
      'smtp sub-addr-delim "\\t"\n' + M)

    # ---------------------------------------------------------------- line numbers
    I("lineno-after-continuation", "syntax error on a continued line is reported on the physical line of the bad token",
      'action "b" \\\n  mbox \\\n  bogus\n' + M)
    I("lineno-after-multiline-string", "syntax error after a quoted string spanning lines",
      'action "b" mda "line1\nline2\nline3" bogus\n' + M)
    I("lineno-multiline-string-semantic", "semantic error whose token is a quoted string spanning lines",
      'action "b" mbox user "no\nbody"\n' + M)
    I("lineno-macro-expansion", "error inside a macro expansion is reported on the line of the use",
      'm = "mbox bogus"\n\naction "b" $m\n' + M)
    I("lineno-statement-ending-continuation", "statement cut short by a continuation followed by an empty line",
      'action "b" \\\n\nmbox\n' + M)
    I("include-error-and-main-error", "errors in an included file and in the main file are reported in order",
      'bogus1\ninclude "../data/inc-error.conf"\nbogus2\n' + M)
    I("listen-socket-tls", "tls is not a socket listener option", 'listen on socket tls\n' + M)
    I("action-alias-no-table", "alias without a table", 'action "b" mbox alias\n' + M)
    I("table-keyword-key", "an unquoted keyword as an inline map key", 'table t { match = x }\n' + M)
    I("include-empty-name", "include of an empty file name", 'include ""\n' + M)
    I("table-db-btree", "db table built with makemap -d btree: OpenSMTPD opens db files as hashes",
      f'table t db:{D}/aliases-btree.db\n' + M)
    I("table-db-zeros", "db table whose first page is all zeros", f'table t db:{D}/zeros.db\n' + M)
    I("table-db-long-text", "db table pointing to a text file longer than a Berkeley DB metadata page",
      f'table t db:{D}/long-text\n' + M)
