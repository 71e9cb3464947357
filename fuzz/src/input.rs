//! Reading structure out of the fuzzer's bytes.

/// The bytes folded onto the characters that matter for SMTP framing and grammar, so that the
/// fuzzer reaches deep states quickly (the alphabet of protocol/tests/props.rs `smtpish()`,
/// plus the punctuation of paths and parameters).
pub fn smtpish(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8] = b"\r\n.\0: a<>@=,-\"\\";
    // About half the bytes land on the alphabet; the others stay as they are.
    data.iter()
        .map(|&b| ALPHABET.get(usize::from(b % 32)).copied().unwrap_or(b))
        .collect()
}

/// A cursor over the fuzzer's bytes: small decisions first, then the rest as data.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// One byte (0 once the input is used up).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Splits `data` into pieces at NUL bytes (the fuzzer's way of giving several strings).
pub fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}
