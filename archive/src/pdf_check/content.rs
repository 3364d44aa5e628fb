//! A content-stream lexer that keeps only what the render check looks at: operators with their
//! name, string and array operands. Numbers and dictionaries are recognised and dropped, so a page
//! of positioned text costs no allocation per coordinate (lopdf's full decoder builds an object
//! for every one, which dominated the check).
//!
//! It follows ISO 32000-1 §7.2–7.3 and §8.9.7 (inline images) for what it must skip, never
//! panics, bounds nesting, and reports a malformed stream instead of guessing.

/// An operand the check may need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Name(Vec<u8>),
    Str(Vec<u8>),
    Array(Vec<Operand>),
    /// A number, boolean, null or dictionary.
    Other,
}

/// Deepest nesting of arrays and dictionaries accepted.
const MAX_DEPTH: usize = 32;

/// Calls `op(operator, operands)` for every operator in `data`, in order; a malformed stream
/// is reported through `malformed`.
pub fn for_each_op<E>(
    data: &[u8],
    mut op: impl FnMut(&[u8], &[Operand]) -> Result<(), E>,
    malformed: impl Fn(String) -> E,
) -> Result<(), E> {
    let mut lexer = Lexer { data, pos: 0 };
    let mut operands: Vec<Operand> = Vec::new();
    while let Some(token) = lexer.token(0).map_err(&malformed)? {
        match token {
            Token::Operand(o) => operands.push(o),
            Token::Keyword(b"true" | b"false" | b"null") => operands.push(Operand::Other),
            Token::Keyword(b"BI") => {
                lexer.skip_inline_image().map_err(&malformed)?;
                operands.clear();
            }
            Token::Keyword(k) => {
                op(k, &operands)?;
                operands.clear();
            }
            Token::Close(c) => return Err(malformed(format!("unexpected {:?}", char::from(c)))),
        }
    }
    Ok(())
}

enum Token<'a> {
    Operand(Operand),
    Keyword(&'a [u8]),
    /// `]` or `>` of `>>`, outside the array or dictionary they would close.
    Close(u8),
}

struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
}

fn is_white(b: u8) -> bool {
    matches!(b, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_white(b) && !is_delimiter(b)
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.data.get(self.pos + ahead).copied()
    }

    /// Skips white space and comments.
    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if is_white(b) {
                self.pos += 1;
            } else if b == b'%' {
                while self.peek().is_some_and(|b| b != b'\n' && b != b'\r') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn regular_run(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(is_regular) {
            self.pos += 1;
        }
        self.data.get(start..self.pos).unwrap_or_default()
    }

    /// The next token, `None` at the end.
    fn token(&mut self, depth: usize) -> Result<Option<Token<'a>>, String> {
        if depth > MAX_DEPTH {
            return Err("arrays or dictionaries nest too deep".to_owned());
        }
        self.skip_space();
        let Some(b) = self.peek() else {
            return Ok(None);
        };
        let token = match b {
            b'/' => {
                self.pos += 1;
                Token::Operand(Operand::Name(decode_name(self.regular_run())))
            }
            b'(' => {
                self.pos += 1;
                Token::Operand(Operand::Str(self.literal_string()?))
            }
            b'<' if self.peek_at(1) == Some(b'<') => {
                self.pos += 2;
                self.skip_dictionary(depth)?;
                Token::Operand(Operand::Other)
            }
            b'<' => {
                self.pos += 1;
                Token::Operand(Operand::Str(self.hex_string()?))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.token(depth + 1)? {
                        Some(Token::Operand(o)) => items.push(o),
                        Some(Token::Close(b']')) => break,
                        Some(Token::Keyword(b"true" | b"false" | b"null")) => {
                            items.push(Operand::Other);
                        }
                        _ => return Err("unterminated or malformed array".to_owned()),
                    }
                }
                Token::Operand(Operand::Array(items))
            }
            b']' => {
                self.pos += 1;
                Token::Close(b']')
            }
            b'>' if self.peek_at(1) == Some(b'>') => {
                self.pos += 2;
                Token::Close(b'>')
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => {
                self.regular_run();
                Token::Operand(Operand::Other)
            }
            b if is_regular(b) => Token::Keyword(self.regular_run()),
            other => return Err(format!("unexpected {:?}", char::from(other))),
        };
        Ok(Some(token))
    }

    /// After `<<`: everything up to the matching `>>`.
    fn skip_dictionary(&mut self, depth: usize) -> Result<(), String> {
        loop {
            match self.token(depth + 1)? {
                Some(Token::Close(b'>')) => return Ok(()),
                Some(Token::Operand(_) | Token::Keyword(_)) => {}
                _ => return Err("unterminated or malformed dictionary".to_owned()),
            }
        }
    }

    /// After `(`: the string's bytes, escapes resolved, up to the balancing `)`.
    fn literal_string(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut open = 1usize;
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated string".to_owned());
            };
            self.pos += 1;
            match b {
                b'(' => {
                    open += 1;
                    out.push(b);
                }
                b')' => {
                    open -= 1;
                    if open == 0 {
                        return Ok(out);
                    }
                    out.push(b);
                }
                b'\\' => self.escape(&mut out),
                // An unescaped end of line is read as a line feed, whatever its bytes.
                b'\r' => {
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                b => out.push(b),
            }
        }
    }

    /// After a backslash inside a literal string.
    fn escape(&mut self, out: &mut Vec<u8>) {
        let Some(b) = self.peek() else {
            return;
        };
        self.pos += 1;
        match b {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'0'..=b'7' => {
                let mut value = u32::from(b - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                // High-order overflow is ignored (§7.3.4.2).
                out.push(value.to_le_bytes()[0]);
            }
            // A backslash before an end of line continues the string on the next line.
            b'\r' => {
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            b'\n' => {}
            // `\(`, `\)`, `\\`, and a backslash before any other byte, which is dropped.
            b => out.push(b),
        }
    }

    /// After `<`: the bytes of a hexadecimal string up to `>`.
    fn hex_string(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated hexadecimal string".to_owned());
            };
            self.pos += 1;
            let nibble = match b {
                b'>' => {
                    // An odd final digit is followed by an implied 0.
                    if let Some(h) = high {
                        out.push(h << 4);
                    }
                    return Ok(out);
                }
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                b if is_white(b) => continue,
                b => return Err(format!("{:?} in a hexadecimal string", char::from(b))),
            };
            match high.take() {
                Some(h) => out.push(h << 4 | nibble),
                None => high = Some(nibble),
            }
        }
    }

    /// After `BI`: the image dictionary, `ID`, one white-space byte, the data, and `EI`. The
    /// data's length is not declared, so it ends at the first `EI` between white space (or at
    /// the end of the stream), as readers find it.
    fn skip_inline_image(&mut self) -> Result<(), String> {
        loop {
            match self.token(1)? {
                Some(Token::Keyword(b"ID")) => break,
                Some(Token::Operand(_)) => {}
                Some(Token::Keyword(b"true" | b"false" | b"null")) => {}
                _ => return Err("inline image without ID".to_owned()),
            }
        }
        self.pos += 1;
        let data = self.data.get(self.pos..).unwrap_or_default();
        let end = data
            .windows(4)
            .position(|w| is_white(w[0]) && w[1] == b'E' && w[2] == b'I' && is_white(w[3]));
        match end {
            Some(at) => self.pos += at + 4,
            None if data.ends_with(b"EI") => self.pos += data.len(),
            None => return Err("inline image without EI".to_owned()),
        }
        Ok(())
    }
}

/// A name's bytes with `#xx` escapes resolved.
fn decode_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let hex = |at: usize| raw.get(at).and_then(|d| char::from(*d).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'#', Some(h), Some(l)) => {
                out.extend(u8::try_from(h * 16 + l).ok());
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(data: &[u8]) -> Result<Vec<(String, Vec<Operand>)>, String> {
        let mut out = Vec::new();
        for_each_op(
            data,
            |op, operands| {
                out.push((String::from_utf8_lossy(op).into_owned(), operands.to_vec()));
                Ok(())
            },
            |e| e,
        )?;
        Ok(out)
    }

    fn s(bytes: &[u8]) -> Operand {
        Operand::Str(bytes.to_vec())
    }

    #[test]
    fn keeps_names_strings_and_arrays() {
        let got = ops(
            b"q 0.028 0 0 .5 -3 +4 cm /T#30 Do BT /F0 300 Tf % comment (x) Tj\n\
              (a\\(b\\)\\000\\101\\12c(d)) Tj <00 4 1 1> Tj [(A) -250 <42>] TJ 1 2 (z) \" ET Q",
        )
        .unwrap();
        let names: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "q", "cm", "Do", "BT", "Tf", "Tj", "Tj", "TJ", "\"", "ET", "Q"
            ]
        );
        assert_eq!(got[1].1, vec![Operand::Other; 6]);
        assert_eq!(got[2].1, [Operand::Name(b"T0".to_vec())]);
        assert_eq!(got[4].1, [Operand::Name(b"F0".to_vec()), Operand::Other]);
        assert_eq!(got[5].1, [s(b"a(b)\0A\nc(d)")]);
        assert_eq!(got[6].1, [s(&[0x00, 0x41, 0x10])]);
        assert_eq!(
            got[7].1,
            [Operand::Array(vec![s(b"A"), Operand::Other, s(b"B")])]
        );
        assert_eq!(got[8].1, [Operand::Other, Operand::Other, s(b"z")]);
    }

    #[test]
    fn line_ends_in_strings_and_continuations() {
        let got = ops(b"(a\r\nb\\\r\nc\\\nd\re) Tj").unwrap();
        assert_eq!(got[0].1, [s(b"a\nbcd\ne")]);
    }

    #[test]
    fn skips_dictionaries_and_inline_images() {
        let got = ops(b"/P <</MCID 0 /A [1 2] /D <<>> /S (x)>> BDC EMC \
              BI /W 2 /H 1 /BPC 8 /CS /G ID \x00EI\xffz EI Q")
        .unwrap();
        let names: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(names, ["BDC", "EMC", "Q"]);
        assert_eq!(got[0].1, [Operand::Name(b"P".to_vec()), Operand::Other]);
    }

    #[test]
    fn malformed_streams_are_errors() {
        for bad in [
            b"(open Tj".as_slice(),
            b"<00 Tj",
            b"<0g> Tj",
            b"[1 2 Tj",
            b"] Tj",
            b"<< /A 1 Tj",
            b"BI /W 1 ID xxxx",
            b")",
        ] {
            assert!(ops(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = [b"[".repeat(100), b"]".repeat(100)].concat();
        assert!(ops(&deep).is_err());
    }
}
