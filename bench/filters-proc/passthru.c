/*
 * A pass-through proc-exec filter for bench/filters-proc (protocol 0.6, by hand, no library):
 * registers every smtp-in filter phase the session goes through plus data-line, answers
 * `proceed` to each request and echoes every message line back. It reads what is there,
 * answers all complete lines, and writes the answers in one write(2): a filter that cannot
 * keep up with the server would show as its own CPU near 1 s per second of wall time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *out;
static size_t outlen, outcap;

static void emit(const char *s, size_t n)
{
	if (outlen + n > outcap) {
		outcap = (outlen + n) * 2;
		if ((out = realloc(out, outcap)) == NULL)
			exit(1);
	}
	memcpy(out + outlen, s, n);
	outlen += n;
}

static void flush_out(void)
{
	size_t off = 0;
	while (off < outlen) {
		ssize_t n = write(1, out + off, outlen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(1);
		off += (size_t)n;
	}
	outlen = 0;
}

/* filter|0.6|TIME|smtp-in|PHASE|SESSID|TOKEN|REST */
static void line(char *l, size_t len)
{
	if (len == 12 && memcmp(l, "config|ready", 12) == 0) {
		static const char reg[] =
		    "register|filter|smtp-in|connect\n"
		    "register|filter|smtp-in|ehlo\n"
		    "register|filter|smtp-in|helo\n"
		    "register|filter|smtp-in|mail-from\n"
		    "register|filter|smtp-in|rcpt-to\n"
		    "register|filter|smtp-in|data\n"
		    "register|filter|smtp-in|data-line\n"
		    "register|filter|smtp-in|commit\n"
		    "register|ready\n";
		emit(reg, sizeof reg - 1);
		return;
	}
	if (len < 7 || memcmp(l, "filter|", 7) != 0)
		return;
	char *f[7];
	char *p = l;
	int i;
	for (i = 0; i < 7; i++) {
		f[i] = p;
		char *bar = memchr(p, '|', len - (size_t)(p - l));
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	if (i < 7)
		return;
	/* f[4] phase, f[5] sessid, f[6] token, p: the rest (the line for data-line) */
	size_t idlen = (size_t)(p - f[5]); /* "SESSID|TOKEN|" */
	if (strncmp(f[4], "data-line|", 10) == 0) {
		emit("filter-dataline|", 16);
		emit(f[5], idlen);
		emit(p, len - (size_t)(p - l));
	} else {
		emit("filter-result|", 14);
		emit(f[5], idlen);
		emit("proceed", 7);
	}
	emit("\n", 1);
}

int main(void)
{
	static char buf[256 * 1024];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(0, buf + have, sizeof buf - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		have += (size_t)n;
		size_t start = 0;
		char *nl;
		while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
			size_t len = (size_t)(nl - (buf + start));
			line(buf + start, len);
			start += len + 1;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
		if (have == sizeof buf)
			have = 0; /* a line longer than the buffer: dropped */
		flush_out();
	}
}
