//! The smtpd.conf lexer.
//!
//! This is a byte-for-byte re-implementation of the hand-written `yylex()` of OpenSMTPD's parse.y,
//! because administrators' configs depend on its quirks: which characters may appear in a bare word,
//! when digits form a number, how `\` joins lines, how macros are expanded and re-lexed, how
//! `include` switches files mid-stream, and which line number an error is reported on.
//! Each quirk is noted where it is reproduced.

use crate::env::Environment;
use crate::keyword::Keyword;

/// Longest token OpenSMTPD accepts (its lexer buffer is 8096 bytes, one kept for the NUL).
const MAX_TOKEN: usize = 8096;

/// A token as the grammar sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Kw(Keyword),
    /// A bare word that is not a keyword, or any quoted string.
    Str(String),
    Num(i64),
    Arrow,
    Newline,
    /// Any other single byte: `{ } < > ! = ,` and the punctuation that cannot start a word.
    Char(u8),
    Eof,
}

impl Tok {
    pub fn is(&self, c: u8) -> bool {
        matches!(self, Tok::Char(x) if *x == c)
    }
}

/// What `igetc()` returns: a byte, end of file, or one of the two markers that OpenSMTPD pushes
/// around a macro's value so that a `$` inside the value is not expanded again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum In {
    Byte(u8),
    Eof,
    StartExpand,
    DoneExpand,
}

struct SourceFile {
    name: String,
    data: Vec<u8>,
    pos: usize,
    unget: Vec<In>,
    eof_reached: bool,
    lineno: u32,
}

/// One diagnostic the lexer or parser reports, in OpenSMTPD's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `FILE:LINE: msg`, as `yyerror()` prints it.
    At {
        file: String,
        line: u32,
        msg: String,
    },
    /// A line printed as is (log_warn / log_warnx output such as `pushfile: PATH: ...`).
    Plain(String),
}

pub struct Lexer<'e> {
    env: &'e dyn Environment,
    files: Vec<SourceFile>,
    expanding: bool,
    /// `yylval.lineno`: the line of the last token read, which is the line every error names.
    pub lineno: u32,
    /// Name of the file the last token came from.
    pub errfile: String,
    macros: Vec<Macro>,
    pub messages: Vec<Message>,
    /// `file->errors` summed over the file stack; any error makes the configuration invalid.
    pub errors: u32,
}

struct Macro {
    name: String,
    value: String,
    persist: bool,
}

/// The `strerror()` text of an I/O error, as OpenSMTPD's `log_warn` appends it.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn allowed_in_string(c: u8) -> bool {
    c.is_ascii_alphanumeric() || (c.is_ascii_punctuation() && !b"(){}<>!=#,".contains(&c))
}

fn allowed_to_end_number(c: u8) -> bool {
    // C's isspace(): space, \t, \n, \v, \f, \r
    matches!(
        c,
        b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b')' | b',' | b'/' | b'}' | b'='
    )
}

impl<'e> Lexer<'e> {
    pub fn new(env: &'e dyn Environment) -> Self {
        Lexer {
            env,
            files: Vec::new(),
            expanding: false,
            lineno: 1,
            errfile: String::new(),
            macros: Vec::new(),
            messages: Vec::new(),
            errors: 0,
        }
    }

    /// `-D name=value`: a macro that the file's own definitions cannot override.
    pub fn define_persistent(&mut self, name: &str, value: &str) {
        self.symset(name, value, true);
    }

    pub fn symset(&mut self, name: &str, value: &str, persist: bool) {
        if let Some(i) = self.macros.iter().position(|m| m.name == name) {
            if self.macros[i].persist {
                return;
            }
            self.macros.remove(i);
        }
        self.macros.push(Macro {
            name: name.to_string(),
            value: value.to_string(),
            persist,
        });
    }

    fn symget(&self, name: &str) -> Option<String> {
        self.macros
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value.clone())
    }

    /// Opens a file and makes it the one being read. Returns false (after printing OpenSMTPD's
    /// `pushfile: PATH: reason` line) when it cannot be read.
    pub fn pushfile(&mut self, name: &str) -> bool {
        // fopen() of a directory succeeds on Linux and reading it ends at once: an empty file.
        let read = match self.env.read_file(name) {
            Err(e) if e.raw_os_error() == Some(21) => Ok(Vec::new()),
            r => r,
        };
        match read {
            Ok(data) => {
                let lineno = if self.files.is_empty() { 1 } else { 0 };
                self.files.push(SourceFile {
                    name: name.to_string(),
                    data,
                    pos: 0,
                    unget: Vec::new(),
                    eof_reached: false,
                    lineno,
                });
                true
            }
            Err(e) => {
                self.messages.push(Message::Plain(format!(
                    "pushfile: {}: {}",
                    name,
                    strerror(&e)
                )));
                false
            }
        }
    }

    /// Depth of the include stack; also bounds include recursion (see `parser`).
    pub fn depth(&self) -> usize {
        self.files.len()
    }

    fn popfile(&mut self) -> bool {
        self.files.pop();
        !self.files.is_empty()
    }

    fn file(&mut self) -> &mut SourceFile {
        // The parser never lexes with an empty stack: the top file is pushed before parsing and
        // is never popped by `lgetc` (it returns EOF instead).
        let n = self.files.len();
        &mut self.files[n - 1]
    }

    pub fn current_file_name(&self) -> &str {
        self.files.last().map(|f| f.name.as_str()).unwrap_or("")
    }

    pub fn lungetc_newline(&mut self) {
        self.lungetc(In::Byte(b'\n'));
    }

    fn lungetc(&mut self, c: In) {
        if c == In::Eof {
            return;
        }
        self.file().unget.push(c);
    }

    fn igetc(&mut self) -> In {
        loop {
            let f = self.file();
            let c = if let Some(c) = f.unget.pop() {
                c
            } else if f.pos < f.data.len() {
                f.pos += 1;
                In::Byte(f.data[f.pos - 1])
            } else {
                In::Eof
            };
            match c {
                In::StartExpand => self.expanding = true,
                In::DoneExpand => self.expanding = false,
                _ => return c,
            }
        }
    }

    /// `lgetc(quotec)` for quoted strings: raw bytes, EOF ends the string with an error.
    fn lgetc_quoted(&mut self, quotec: u8) -> In {
        let c = self.igetc();
        if c == In::Eof {
            self.yyerror("reached end of file while parsing quoted string".into());
            if self.files.len() == 1 || !self.popfile() {
                return In::Eof;
            }
            return In::Byte(quotec);
        }
        c
    }

    /// `lgetc(0)`: bytes with `\`-newline joined, and a fake newline at the first EOF of a file so
    /// that a last line without newline still ends its statement.
    fn lgetc(&mut self) -> In {
        let mut c = self.igetc();
        while c == In::Byte(b'\\') {
            let next = self.igetc();
            if next != In::Byte(b'\n') {
                // OpenSMTPD drops the backslash before any other character outside quotes.
                c = next;
                break;
            }
            self.lineno = self.file().lineno;
            self.file().lineno += 1;
            c = self.igetc();
        }
        if c == In::Eof {
            if !self.file().eof_reached {
                self.file().eof_reached = true;
                return In::Byte(b'\n');
            }
            while c == In::Eof {
                if self.files.len() == 1 || !self.popfile() {
                    return In::Eof;
                }
                c = self.igetc();
            }
        }
        c
    }

    fn findeol(&mut self) {
        loop {
            match self.lgetc() {
                In::Byte(b'\n') => {
                    self.file().lineno += 1;
                    break;
                }
                In::Eof => break,
                _ => {}
            }
        }
    }

    /// Reports `FILE:LINE: msg` on the line of the last token read, as `yyerror()` does.
    pub fn yyerror(&mut self, msg: String) {
        self.errors += 1;
        let file = if self.files.is_empty() {
            self.errfile.clone()
        } else {
            self.current_file_name().to_string()
        };
        self.messages.push(Message::At {
            file,
            line: self.lineno,
            msg,
        });
    }

    /// A lexical error: reported, the rest of the line skipped, and the grammar sees `ERROR` (a
    /// token no rule accepts), so a `syntax error` follows as in OpenSMTPD.
    fn lex_error(&mut self, msg: String) -> Tok {
        self.yyerror(msg);
        self.findeol();
        Tok::Char(0xff)
    }

    /// Appends `first` and the bytes after it while `more` accepts them; puts the first refused
    /// input back and returns it. None when the token grows too long.
    fn read_run(&mut self, buf: &mut Vec<u8>, first: u8, more: fn(u8) -> bool) -> Option<In> {
        let mut c = first;
        loop {
            buf.push(c);
            if buf.len() >= MAX_TOKEN {
                return None;
            }
            let next = self.lgetc();
            match next {
                In::Byte(d) if more(d) => c = d,
                _ => {
                    self.lungetc(next);
                    return Some(next);
                }
            }
        }
    }

    /// The next token. After a lexical error (reported here) the rest of the line is skipped and
    /// the grammar sees an `ERROR` token, which is always a syntax error for it.
    pub fn next_token(&mut self) -> Tok {
        'top: loop {
            let mut buf: Vec<u8> = Vec::new();
            let mut c = self.lgetc();
            while c == In::Byte(b' ') || c == In::Byte(b'\t') {
                c = self.lgetc();
            }
            self.lineno = self.file().lineno;
            if c == In::Byte(b'#') {
                loop {
                    c = self.lgetc();
                    if c == In::Byte(b'\n') || c == In::Eof {
                        break;
                    }
                }
            }
            if c == In::Byte(b'$') && !self.expanding {
                loop {
                    c = self.lgetc();
                    let b = match c {
                        In::Eof => return Tok::Eof,
                        In::Byte(b) => b,
                        _ => 0,
                    };
                    if buf.len() + 1 >= MAX_TOKEN - 1 {
                        return self.lex_error("string too long".into());
                    }
                    if b.is_ascii_alphanumeric() || b == b'_' {
                        buf.push(b);
                        continue;
                    }
                    self.lungetc(c);
                    break;
                }
                let name = String::from_utf8_lossy(&buf).into_owned();
                let Some(val) = self.symget(&name) else {
                    return self.lex_error(format!("macro '{}' not defined", name));
                };
                self.lungetc(In::DoneExpand);
                for b in val.bytes().rev() {
                    self.lungetc(In::Byte(b));
                }
                self.lungetc(In::StartExpand);
                continue 'top;
            }

            let b = match c {
                In::Eof => return Tok::Eof,
                In::Byte(b) => b,
                _ => return Tok::Eof,
            };

            if b == b'\'' || b == b'"' {
                let quotec = b;
                loop {
                    let mut c = match self.lgetc_quoted(quotec) {
                        In::Eof => return Tok::Eof,
                        In::Byte(x) => x,
                        _ => continue,
                    };
                    if c == b'\n' {
                        // A newline inside quotes advances the line count but is not kept.
                        self.file().lineno += 1;
                        continue;
                    } else if c == b'\\' {
                        let next = match self.lgetc_quoted(quotec) {
                            In::Eof => return Tok::Eof,
                            x => x,
                        };
                        if next == In::Byte(quotec)
                            || next == In::Byte(b' ')
                            || next == In::Byte(b'\t')
                        {
                            if let In::Byte(x) = next {
                                c = x;
                            }
                        } else if next == In::Byte(b'\n') {
                            self.file().lineno += 1;
                            continue;
                        } else {
                            self.lungetc(next);
                        }
                    } else if c == quotec {
                        break;
                    } else if c == 0 {
                        return self.lex_error("syntax error".into());
                    }
                    if buf.len() + 1 >= MAX_TOKEN - 1 {
                        return self.lex_error("string too long".into());
                    }
                    buf.push(c);
                }
                return Tok::Str(String::from_utf8_lossy(&buf).into_owned());
            }

            let mut c = b;
            if c == b'-' || c.is_ascii_digit() {
                let Some(next) = self.read_run(&mut buf, c, |d| d.is_ascii_digit()) else {
                    return self.lex_error("string too long".into());
                };
                let ends = match next {
                    In::Eof => true,
                    In::Byte(x) => allowed_to_end_number(x),
                    _ => false,
                };
                let only_minus = buf.len() == 1 && buf[0] == b'-';
                if !only_minus && ends {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    return match strtonum(&text) {
                        Ok(n) => Tok::Num(n),
                        Err(why) => self.lex_error(format!("\"{}\" invalid number: {}", text, why)),
                    };
                }
                // Not a number after all (`10M`, `4h`, `127.0.0.1`): push back and re-read.
                while buf.len() > 1 {
                    let x = buf.pop().unwrap_or(b' ');
                    self.lungetc(In::Byte(x));
                }
                c = buf.pop().unwrap_or(b' ');
                if c == b'-' {
                    return Tok::Char(b'-');
                }
            }

            if c == b'=' {
                let n = self.lgetc();
                if n == In::Byte(b'>') {
                    return Tok::Arrow;
                }
                self.lungetc(n);
                return Tok::Char(b'=');
            }

            if c.is_ascii_alphanumeric() || c == b':' || c == b'_' {
                if self.read_run(&mut buf, c, allowed_in_string).is_none() {
                    return self.lex_error("string too long".into());
                }
                let word = String::from_utf8_lossy(&buf).into_owned();
                return match Keyword::lookup(&word) {
                    Some(k) => Tok::Kw(k),
                    None => Tok::Str(word),
                };
            }
            if c == b'\n' {
                self.lineno = self.file().lineno;
                self.file().lineno += 1;
                return Tok::Newline;
            }
            if c == 0 {
                // yacc reads a NUL byte as its end-of-input token.
                return Tok::Eof;
            }
            return Tok::Char(c);
        }
    }
}

/// OpenBSD's `strtonum(s, LLONG_MIN, LLONG_MAX)`, with its error words.
fn strtonum(s: &str) -> Result<i64, &'static str> {
    match s.parse::<i64>() {
        Ok(n) => Ok(n),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow => Err("too large"),
            std::num::IntErrorKind::NegOverflow => Err("too small"),
            _ => Err("invalid"),
        },
    }
}
