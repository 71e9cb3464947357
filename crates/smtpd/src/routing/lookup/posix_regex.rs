//! POSIX extended regexes (glibc's dialect) translated to the regex crate's syntax.

/// Translates a POSIX extended regex (glibc's dialect, as `regcomp(REG_EXTENDED)` reads it) to
/// the regex crate's syntax. Returns the pattern and whether it was `(?i)`-prefixed. `None` when
/// it cannot be expressed (back-references, collating elements), which OpenSMTPD would either
/// reject or match in ways we do not reproduce: such an entry never matches.
pub fn compile_posix_ere(pattern: &str) -> Option<(String, bool)> {
    let (icase, pat) = match pattern.strip_prefix("(?i)") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(pat.len() + 8);
    if icase {
        out.push_str("(?i)");
    }
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let n = *chars.get(i + 1)?;
                i += 2;
                match n {
                    'w' | 'W' | 's' | 'S' | 'b' | 'B' => {
                        out.push('\\');
                        out.push(n);
                    }
                    '<' | '>' => out.push_str("\\b"),
                    '`' => out.push_str("\\A"),
                    '\'' => out.push_str("\\z"),
                    '1'..='9' => return None,
                    _ => push_literal(&mut out, n),
                }
                continue;
            }
            '[' => {
                let end = translate_bracket(&chars, i, &mut out)?;
                i = end;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    regex::Regex::new(&out).ok()?;
    Some((out, icase))
}

pub(crate) fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// A POSIX bracket expression starting at `chars[start] == '['`: `\` is literal inside, `]`
/// first is literal, `[:class:]` kept. Returns the index after the closing `]`.
pub(crate) fn translate_bracket(chars: &[char], start: usize, out: &mut String) -> Option<usize> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            out.push(']');
            return Some(i + 1);
        }
        first = false;
        if c == '[' {
            match chars.get(i + 1) {
                Some(':') => {
                    let rest: String = chars[i..].iter().collect();
                    let close = rest.find(":]")?;
                    out.push_str(&rest[..close + 2]);
                    i += rest[..close + 2].chars().count();
                    continue;
                }
                Some('.') | Some('=') => return None,
                _ => {
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
            }
        }
        match c {
            '\\' | ']' | '&' | '~' | '^' => {
                out.push('\\');
                out.push(c);
            }
            '-' => {
                // A range dash stays; "--" would be a set difference for the regex crate.
                if chars.get(i + 1) == Some(&'-') || chars.get(i + 1) == Some(&']') {
                    out.push_str("\\-");
                } else {
                    out.push('-');
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
}
