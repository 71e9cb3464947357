#!/bin/bash
# opensmtpd-tls.sh: make a TLS-capable OpenSMTPD 6.8.0p2 oracle on Debian 12 and print its path.
#
#   tests/tools/opensmtpd-tls.sh [--prefix DIR] [--check]
#
# Without arguments it installs, idempotently, and prints exactly one line on stdout:
# the path of an smtpd that can do TLS (default /opt/opensmtpd-tls/sbin/smtpd).
# Everything else goes to stderr.  --check also runs a self-test in a private network
# namespace (loopback only): a STARTTLS handshake against the system /usr/sbin/smtpd
# (it fails on Debian 12) and against the oracle (it must work).  Exits non-zero if the
# oracle cannot do TLS.
#
# Why: Debian 12's opensmtpd 6.8.0p2 is linked against OpenSSL 3.  Its privsep key
# handling (ssl.c ssl_load_pkey) does EVP_PKEY_get1_RSA()/EVP_PKEY_get1_EC_KEY() on the
# certificate's public key and puts the pki name in the key's ex_data, so that the
# "RSA/ECDSA privsep engine" in the pony process forwards the signature to the klondike
# (ca) process.  In OpenSSL 3 that key is provider-native and EVP_PKEY_get1_*() returns
# a cached *copy*: the ex_data never reaches the key libssl signs with, the engine falls
# back to the default method on a public-only key, and every handshake dies with
# "missing private key" / "SSL routines::EVP lib" (OpenSMTPD issues #1171, #1239).
# Upstream fixed the same bug in its bundled libtls (commit a2cf739c, PR #1208) by
# storing the key back with EVP_PKEY_set1_RSA()/EVP_PKEY_set1_EC_KEY().
#
# How: we do not touch /usr/sbin/smtpd.  We build a tiny LD_PRELOAD shim that does that
# same store-back right after smtpd's RSA_set_ex_data()/EC_KEY_set_ex_data() call, and
# install a wrapper that runs /usr/sbin/smtpd with the shim preloaded (its children
# inherit the environment; smtpd re-executes /usr/sbin/smtpd for each process).
# Only 4 OpenSSL functions are wrapped; 140 recorded non-TLS dialogues pass unchanged
# with the shim preloaded.  (Copied from the project's shared tools; tests/tls_live.rs compares against it.)
#
# Needs root (apt-get, /opt, netns for --check).  Installs opensmtpd, gcc, libc6-dev and
# libssl-dev with apt-get if they are missing.
set -euo pipefail

PREFIX=/opt/opensmtpd-tls
CHECK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --check) CHECK=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" >&2; exit 0 ;;
        *) echo "usage: $0 [--prefix DIR] [--check]" >&2; exit 2 ;;
    esac
done

log() { echo "opensmtpd-tls: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

SYS_SMTPD=/usr/sbin/smtpd
SHIM_SO=$PREFIX/lib/opensmtpd-ossl3-shim.so
SHIM_C=$PREFIX/src/opensmtpd-ossl3-shim.c
WRAPPER=$PREFIX/sbin/smtpd

# ------------------------------------------------------------------ packages
apt_install() {
    log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >&2; then
        apt-get update >&2 && apt-get install -y --no-install-recommends "$@" >&2
    fi
}

if [ ! -x "$SYS_SMTPD" ]; then
    # do not let the package start a system smtpd on port 25 while we install it
    POLICY=/usr/sbin/policy-rc.d; OWN_POLICY=0
    if [ ! -e "$POLICY" ]; then printf '#!/bin/sh\nexit 101\n' > "$POLICY"; chmod +x "$POLICY"; OWN_POLICY=1; fi
    apt_install opensmtpd || { [ $OWN_POLICY = 1 ] && rm -f "$POLICY"; die "cannot install opensmtpd"; }
    [ $OWN_POLICY = 1 ] && rm -f "$POLICY"
fi
VERSION=$("$SYS_SMTPD" -h 2>&1 | sed -n 's/^version: //p' || true)
[ "$VERSION" = "OpenSMTPD 6.8.0p2" ] || log "warning: $SYS_SMTPD says '$VERSION', expected 'OpenSMTPD 6.8.0p2'"
ldd "$SYS_SMTPD" | grep -q 'libcrypto.so.3' || log "warning: $SYS_SMTPD is not linked against OpenSSL 3 (libcrypto.so.3); the shim targets OpenSSL 3"

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -f /usr/include/openssl/evp.h ] || need+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# ------------------------------------------------------------------ shim source
mkdir -p "$PREFIX/src" "$PREFIX/lib" "$PREFIX/sbin"
TMPC=$(mktemp "$PREFIX/src/.shim.XXXXXX")
cat > "$TMPC" <<'EOF'
/*
 * opensmtpd-ossl3-shim.c: LD_PRELOAD fix for OpenSMTPD 6.8.0p2 linked against OpenSSL 3.
 *
 * ssl.c:ssl_load_pkey() does, on the public key taken from the certificate,
 *     rsa = EVP_PKEY_get1_RSA(pkey);   RSA_set_ex_data(rsa, 0, pkiname);
 * (or EVP_PKEY_get1_EC_KEY + EC_KEY_set_ex_data) so that the privsep RSA/ECDSA engine
 * knows which pki the klondike (ca) process must sign with.  With OpenSSL 3 the pkey is
 * provider-native and EVP_PKEY_get1_*() returns a cached legacy copy, so the ex_data
 * is lost and the handshake fails with "missing private key".  As upstream did for its
 * libtls (OpenSMTPD commit a2cf739c), we store the modified key back into the pkey
 * with EVP_PKEY_set1_RSA/EC_KEY: the pkey becomes a legacy key that carries the ex_data
 * and the engine method, and libssl signs through the privsep engine again.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>

static EVP_PKEY *last_rsa_pkey; static RSA *last_rsa;
static EVP_PKEY *last_ec_pkey;  static EC_KEY *last_ec;

static void *
real(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (f == NULL) {
		fprintf(stderr, "opensmtpd-ossl3-shim: dlsym(%s) failed\n", name);
		abort();
	}
	return f;
}

static void
debug(const char *what, int ok)
{
	if (getenv("OSSL3_SHIM_DEBUG") != NULL)
		fprintf(stderr, "opensmtpd-ossl3-shim: pid %d: %s key stored back into its EVP_PKEY: %s\n",
		    (int)getpid(), what, ok ? "ok" : "FAILED");
}

RSA *
EVP_PKEY_get1_RSA(EVP_PKEY *pkey)
{
	static RSA *(*f)(EVP_PKEY *);
	RSA *r;

	if (f == NULL)
		f = (RSA *(*)(EVP_PKEY *))real("EVP_PKEY_get1_RSA");
	r = f(pkey);
	last_rsa_pkey = pkey;
	last_rsa = r;
	return r;
}

EC_KEY *
EVP_PKEY_get1_EC_KEY(EVP_PKEY *pkey)
{
	static EC_KEY *(*f)(EVP_PKEY *);
	EC_KEY *k;

	if (f == NULL)
		f = (EC_KEY *(*)(EVP_PKEY *))real("EVP_PKEY_get1_EC_KEY");
	k = f(pkey);
	last_ec_pkey = pkey;
	last_ec = k;
	return k;
}

int
RSA_set_ex_data(RSA *r, int idx, void *arg)
{
	static int (*f)(RSA *, int, void *);
	int ret;

	if (f == NULL)
		f = (int (*)(RSA *, int, void *))real("RSA_set_ex_data");
	ret = f(r, idx, arg);
	/* only for the key we just got from a provider-native pkey */
	if (ret == 1 && idx == 0 && r != NULL && r == last_rsa &&
	    last_rsa_pkey != NULL && EVP_PKEY_get0_provider(last_rsa_pkey) != NULL)
		debug("RSA", EVP_PKEY_set1_RSA(last_rsa_pkey, r));
	last_rsa = NULL;
	last_rsa_pkey = NULL;
	return ret;
}

int
EC_KEY_set_ex_data(EC_KEY *k, int idx, void *arg)
{
	static int (*f)(EC_KEY *, int, void *);
	int ret;

	if (f == NULL)
		f = (int (*)(EC_KEY *, int, void *))real("EC_KEY_set_ex_data");
	ret = f(k, idx, arg);
	if (ret == 1 && idx == 0 && k != NULL && k == last_ec &&
	    last_ec_pkey != NULL && EVP_PKEY_get0_provider(last_ec_pkey) != NULL)
		debug("EC", EVP_PKEY_set1_EC_KEY(last_ec_pkey, k));
	last_ec = NULL;
	last_ec_pkey = NULL;
	return ret;
}
EOF
if [ -f "$SHIM_C" ] && cmp -s "$TMPC" "$SHIM_C"; then rm -f "$TMPC"; else mv -f "$TMPC" "$SHIM_C"; chmod 644 "$SHIM_C"; rm -f "$SHIM_SO"; fi

# ------------------------------------------------------------------ build
if [ ! -f "$SHIM_SO" ] || [ "$SHIM_C" -nt "$SHIM_SO" ]; then
    log "building $SHIM_SO"
    TMPSO=$(mktemp "$PREFIX/lib/.shim.XXXXXX")
    nice -n 19 gcc -O2 -Wall -Wno-deprecated-declarations -fPIC -shared \
        -o "$TMPSO" "$SHIM_C" -lcrypto -ldl >&2
    chmod 755 "$TMPSO"
    mv -f "$TMPSO" "$SHIM_SO"
fi

# ------------------------------------------------------------------ wrapper
TMPW=$(mktemp "$PREFIX/sbin/.smtpd.XXXXXX")
cat > "$TMPW" <<EOF
#!/bin/sh
# TLS-capable OpenSMTPD 6.8.0p2 oracle: Debian's $SYS_SMTPD with the OpenSSL 3 privsep-key
# fix preloaded (made by opensmtpd-tls.sh in the shared tools).
LD_PRELOAD="$SHIM_SO\${LD_PRELOAD:+:\$LD_PRELOAD}"
export LD_PRELOAD
exec $SYS_SMTPD "\$@"
EOF
chmod 755 "$TMPW"
if [ -f "$WRAPPER" ] && cmp -s "$TMPW" "$WRAPPER"; then rm -f "$TMPW"; else mv -f "$TMPW" "$WRAPPER"; fi
ln -sfn /usr/sbin/smtpctl "$PREFIX/sbin/smtpctl"

# ------------------------------------------------------------------ self-test
# tls_probe BIN -> prints the smtpd log line of the STARTTLS attempt; returns 0 if "smtp tls" was logged
tls_probe() {
    local bin=$1 tmp ns rc
    tmp=$(mktemp -d /tmp/opensmtpd-tls-check.XXXXXX)
    ns="opensmtpd-tls-check-$$"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
        -days 2 -subj /CN=oracle.test >/dev/null 2>&1
    chmod 600 "$tmp/key.pem"
    cat > "$tmp/smtpd.conf" <<EOF
pki oracle.test cert "$tmp/cert.pem"
pki oracle.test key "$tmp/key.pem"
listen on 127.0.0.1 port 2525 tls pki oracle.test
action "local" mbox
match from local for local action "local"
EOF
    printf '127.0.0.1\tlocalhost oracle.test\n::1\tlocalhost\n' > "$tmp/hosts"
    mkdir -p "$tmp/spool" "$tmp/run"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    set +e
    ip netns exec "$ns" unshare --uts --mount --pid --fork --kill-child --mount-proc --propagation private \
        timeout --kill-after=5 60 bash -c '
            tmp=$1; bin=$2
            mount --bind "$tmp/hosts" /etc/hosts
            [ -e /etc/mailname ] && { echo oracle.test > "$tmp/mailname"; mount --bind "$tmp/mailname" /etc/mailname; }
            mount --bind "$tmp/spool" /var/spool
            mount --bind "$tmp/run" /run
            hostname oracle.test
            "$bin" -d -f "$tmp/smtpd.conf" > "$tmp/log" 2>&1 &
            pid=$!
            for i in $(seq 100); do grep -q ":09DD .* 0A " /proc/net/tcp 2>/dev/null && break; sleep 0.1; done
            echo QUIT | timeout 10 openssl s_client -connect 127.0.0.1:2525 -starttls smtp -quiet > "$tmp/client" 2>&1
            sleep 0.5
            kill "$pid"; wait "$pid"
        ' _ "$tmp" "$bin"
    set -e
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    grep -E ' smtp (tls|disconnected) ' "$tmp/log" | head -2 >&2 || true
    grep -q ' smtp tls ciphers=' "$tmp/log"; rc=$?
    rm -rf "$tmp"
    return $rc
}

if [ $CHECK = 1 ]; then
    log "self-test: system $SYS_SMTPD (expected to fail on Debian 12):"
    if tls_probe "$SYS_SMTPD"; then log "  system smtpd can do TLS here (the package may have been fixed)"; else log "  system smtpd: TLS handshake fails"; fi
    log "self-test: oracle $WRAPPER:"
    tls_probe "$WRAPPER" || die "  oracle: TLS handshake FAILED"
    log "  oracle: TLS ok"
fi

echo "$WRAPPER"
