//! A JSON5 parser that remembers where every value came from.
//!
//! ContainerPilot parses its config with flynn/json5, a fork of Go's `encoding/json` scanner, and
//! pilot must accept the same dialect: comments, unquoted keys, single-quoted strings, trailing
//! commas, hex numbers, leading or trailing decimal points, a leading `+`, `Infinity` and `NaN`,
//! and line continuations in strings. Duplicate keys keep the last value. Missing commas are
//! errors worded as Go words them (`invalid character 'b' after object key:value pair`), so that
//! a user searching for the message finds the ContainerPilot answers.
//!
//! Unlike a serde-based parser this one keeps the line and column of every value and key, because
//! validation errors must cite lines. It never panics, and nesting is bounded so that a
//! pathological file cannot overflow the stack.

use std::collections::HashMap;
use std::fmt;

/// The deepest nesting of arrays and objects accepted; real configs nest four or five levels.
pub const MAX_DEPTH: usize = 128;

/// A 1-based line and column (in characters) in the parsed text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A parsed value and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    /// Every JSON5 number is a float64, as in Go.
    Number(f64),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; a key given twice keeps its last value (at the position of the
    /// last occurrence), as Go's map decoding does.
    Object(Vec<Member>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_pos: Pos,
    pub value: Value,
}

impl Kind {
    /// The JSON name of the type, for messages (`got string`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "boolean",
            Kind::Number(_) => "number",
            Kind::String(_) => "string",
            Kind::Array(_) => "array",
            Kind::Object(_) => "object",
        }
    }
}

/// A syntax error, printed as ContainerPilot prints it (`parse error at line:col [L:C]: <msg>`)
/// followed by the offending lines, but with the line and column computed correctly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub col: u32,
    pub message: String,
    /// The previous line, the error line and a marker under the column.
    pub context: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parse error at line:col [{}:{}]: {}",
            self.line, self.col, self.message
        )?;
        if !self.context.is_empty() {
            write!(f, "\n{}", self.context.trim_end_matches('\n'))?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole JSON5 document: one value, surrounded by whitespace and comments only.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut parser = Parser {
        text,
        chars: text.char_indices().peekable(),
        line: 1,
        col: 1,
        depth: 0,
    };
    let result = parser.document();
    result.map_err(|err| err.into_parse_error(text))
}

/// An error before it is given its context lines.
struct RawError {
    pos: Pos,
    message: String,
}

impl RawError {
    fn into_parse_error(self, text: &str) -> ParseError {
        ParseError {
            line: self.pos.line,
            col: self.pos.col,
            context: context(text, self.pos),
            message: self.message,
        }
    }
}

/// The previous line and the error line, each as `%5d: <text>`, then `-` up to the column and `^`.
fn context(text: &str, pos: Pos) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let index = (pos.line as usize).saturating_sub(1);
    let Some(line) = lines.get(index) else {
        return String::new();
    };
    let mut out = String::new();
    if index > 0
        && let Some(previous) = lines.get(index - 1)
    {
        out.push_str(&format!(
            "{:5}: {}\n",
            index,
            previous.trim_end_matches('\r')
        ));
    }
    out.push_str(&format!(
        "{:5}: {}\n",
        index + 1,
        line.trim_end_matches('\r')
    ));
    out.push_str(&"-".repeat(7 + (pos.col as usize).saturating_sub(1)));
    out.push('^');
    out
}

type PResult<T> = std::result::Result<T, RawError>;

struct Parser<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: u32,
    col: u32,
    depth: usize,
}

/// What the parser was looking for when it met an unexpected character: Go's scanner words its
/// messages by this.
#[derive(Clone, Copy)]
enum Context {
    BeginValue,
    ObjectKey,
    AfterKey,
    AfterMember,
    AfterElement,
    AfterTopLevel,
}

impl Context {
    fn describe(self) -> &'static str {
        match self {
            Context::BeginValue => "looking for beginning of value",
            Context::ObjectKey => "looking for beginning of object key string",
            Context::AfterKey => "after object key",
            Context::AfterMember => "after object key:value pair",
            Context::AfterElement => "after array element",
            Context::AfterTopLevel => "after top-level value",
        }
    }
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|&(_, c)| c)
    }

    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    /// The text from the current position on.
    fn rest(&mut self) -> &str {
        let offset = self.chars.peek().map_or(self.text.len(), |&(i, _)| i);
        &self.text[offset..]
    }

    fn eof(&self) -> RawError {
        RawError {
            pos: self.pos(),
            message: "unexpected end of JSON input".to_string(),
        }
    }

    fn invalid(&self, c: char, context: &str) -> RawError {
        RawError {
            pos: self.pos(),
            message: format!("invalid character {} {}", quote_char(c), context),
        }
    }

    /// The error for whatever is next (a character or the end of input) in `context`.
    fn unexpected(&mut self, context: Context) -> RawError {
        match self.peek() {
            Some(c) => self.invalid(c, context.describe()),
            None => self.eof(),
        }
    }

    fn document(&mut self) -> PResult<Value> {
        self.skip_space()?;
        let value = self.value()?;
        self.skip_space()?;
        if self.peek().is_some() {
            return Err(self.unexpected(Context::AfterTopLevel));
        }
        Ok(value)
    }

    /// Skips whitespace and comments.
    fn skip_space(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(c) if is_space(c) => {
                    self.bump();
                }
                Some('/') => {
                    let rest = self.rest();
                    if rest.starts_with("//") {
                        while let Some(c) = self.peek() {
                            if c == '\n' {
                                break;
                            }
                            self.bump();
                        }
                    } else if rest.starts_with("/*") {
                        self.bump();
                        self.bump();
                        loop {
                            match self.bump() {
                                None => return Err(self.eof()),
                                Some('*') if self.peek() == Some('/') => {
                                    self.bump();
                                    break;
                                }
                                Some(_) => {}
                            }
                        }
                    } else {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> PResult<Value> {
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Err(self.eof());
        };
        let kind = match c {
            '{' => self.object()?,
            '[' => self.array()?,
            '"' | '\'' => Kind::String(self.string()?),
            '-' | '+' | '.' | '0'..='9' | 'I' | 'N' => Kind::Number(self.number()?),
            't' => {
                self.literal("true")?;
                Kind::Bool(true)
            }
            'f' => {
                self.literal("false")?;
                Kind::Bool(false)
            }
            'n' => {
                self.literal("null")?;
                Kind::Null
            }
            c => return Err(self.invalid(c, Context::BeginValue.describe())),
        };
        Ok(Value { kind, pos })
    }

    /// Matches a keyword, with Go's message for a misspelt one.
    fn literal(&mut self, word: &str) -> PResult<()> {
        for (i, expected) in word.chars().enumerate() {
            match self.peek() {
                Some(c) if c == expected => {
                    self.bump();
                }
                Some(c) if i == 0 => return Err(self.invalid(c, Context::BeginValue.describe())),
                Some(c) => {
                    return Err(self.invalid(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(expected)),
                    ));
                }
                None => return Err(self.eof()),
            }
        }
        Ok(())
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(RawError {
                pos: self.pos(),
                message: format!("arrays and objects nested deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn object(&mut self) -> PResult<Kind> {
        self.enter()?;
        self.bump(); // '{'
        let mut members: Vec<Member> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        loop {
            self.skip_space()?;
            if self.peek() == Some('}') {
                self.bump();
                break;
            }
            let key_pos = self.pos();
            let key = self.key()?;
            self.skip_space()?;
            if self.peek() != Some(':') {
                return Err(self.unexpected(Context::AfterKey));
            }
            self.bump();
            self.skip_space()?;
            let value = self.value()?;
            let member = Member {
                key,
                key_pos,
                value,
            };
            // Last one wins, as when Go decodes into a map.
            match index.get(&member.key) {
                Some(&i) => members[i] = member,
                None => {
                    index.insert(member.key.clone(), members.len());
                    members.push(member);
                }
            }
            self.skip_space()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    break;
                }
                _ => return Err(self.unexpected(Context::AfterMember)),
            }
        }
        self.depth -= 1;
        Ok(Kind::Object(members))
    }

    fn key(&mut self) -> PResult<String> {
        match self.peek() {
            Some('"' | '\'') => self.string(),
            Some(c) if is_ident_start(c) => {
                let mut key = String::new();
                while let Some(c) = self.peek() {
                    if !is_ident_part(c) {
                        break;
                    }
                    key.push(c);
                    self.bump();
                }
                Ok(key)
            }
            _ => Err(self.unexpected(Context::ObjectKey)),
        }
    }

    fn array(&mut self) -> PResult<Kind> {
        self.enter()?;
        self.bump(); // '['
        let mut elements = Vec::new();
        loop {
            self.skip_space()?;
            if self.peek() == Some(']') {
                self.bump();
                break;
            }
            elements.push(self.value()?);
            self.skip_space()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    break;
                }
                _ => return Err(self.unexpected(Context::AfterElement)),
            }
        }
        self.depth -= 1;
        Ok(Kind::Array(elements))
    }

    fn string(&mut self) -> PResult<String> {
        let Some(quote) = self.bump() else {
            return Err(self.eof());
        };
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.eof());
            };
            if c == quote {
                self.bump();
                return Ok(out);
            }
            match c {
                '\\' => {
                    self.bump();
                    self.escape(&mut out)?;
                }
                // A raw line break ends nothing in JSON5: it is an error (use `\` + newline).
                '\n' | '\r' | '\u{2028}' | '\u{2029}' => {
                    return Err(self.invalid(c, "in string literal"));
                }
                c if (c as u32) < 0x20 && c != '\t' => {
                    return Err(self.invalid(c, "in string literal"));
                }
                c => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }

    /// One escape sequence, after the backslash.
    fn escape(&mut self, out: &mut String) -> PResult<()> {
        let Some(c) = self.peek() else {
            return Err(self.eof());
        };
        match c {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => {
                out.push('\r');
            }
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0' => {
                self.bump();
                if matches!(self.peek(), Some('0'..='9')) {
                    let d = self.peek().unwrap_or('0');
                    return Err(self.invalid(d, "in string escape code"));
                }
                out.push('\0');
                return Ok(());
            }
            '1'..='9' => return Err(self.invalid(c, "in string escape code")),
            'x' => {
                self.bump();
                let code = self.hex_digits(2, "in \\x hexadecimal character escape")?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                return Ok(());
            }
            'u' => {
                self.bump();
                let code = self.hex_digits(4, "in \\u hexadecimal character escape")?;
                if (0xD800..0xDC00).contains(&code) && self.rest().starts_with("\\u") {
                    // A surrogate pair spells one character; a lone surrogate becomes U+FFFD as
                    // in Go.
                    let save_ok = self.rest()[2..]
                        .get(..4)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|low| (0xDC00..0xE000).contains(low));
                    if let Some(low) = save_ok {
                        for _ in 0..6 {
                            self.bump();
                        }
                        let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(combined).unwrap_or('\u{fffd}'));
                        return Ok(());
                    }
                }
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                return Ok(());
            }
            '\r' => {
                // Line continuation: `\` CR LF or `\` CR.
                self.bump();
                if self.peek() == Some('\n') {
                    self.bump();
                }
                return Ok(());
            }
            '\n' | '\u{2028}' | '\u{2029}' => {} // line continuation
            c => out.push(c),                    // `\'`, `\"`, `\\`, `\/` and any other char
        }
        self.bump();
        Ok(())
    }

    fn hex_digits(&mut self, count: usize, context: &str) -> PResult<u32> {
        let mut code = 0u32;
        for _ in 0..count {
            match self.peek() {
                Some(c) if c.is_ascii_hexdigit() => {
                    code = code * 16 + c.to_digit(16).unwrap_or(0);
                    self.bump();
                }
                Some(c) => return Err(self.invalid(c, context)),
                None => return Err(self.eof()),
            }
        }
        Ok(code)
    }

    fn number(&mut self) -> PResult<f64> {
        let mut negative = false;
        if let Some(sign @ ('+' | '-')) = self.peek() {
            negative = sign == '-';
            self.bump();
        }
        let magnitude = match self.peek() {
            Some('I') => {
                self.word("Infinity")?;
                f64::INFINITY
            }
            Some('N') => {
                self.word("NaN")?;
                f64::NAN
            }
            Some('0') if matches!(self.rest().as_bytes().get(1), Some(b'x' | b'X')) => {
                self.bump();
                self.bump();
                let mut digits = String::new();
                while let Some(c) = self.peek() {
                    if !c.is_ascii_hexdigit() {
                        break;
                    }
                    digits.push(c);
                    self.bump();
                }
                if digits.is_empty() {
                    return Err(self.unexpected_in_number());
                }
                // Past 2^64 the value is only approximate, as it is in float64 anyway.
                digits.chars().fold(0f64, |acc, d| {
                    acc * 16.0 + f64::from(d.to_digit(16).unwrap_or(0))
                })
            }
            _ => self.decimal()?,
        };
        Ok(if negative { -magnitude } else { magnitude })
    }

    fn unexpected_in_number(&mut self) -> RawError {
        match self.peek() {
            Some(c) => self.invalid(c, "in numeric literal"),
            None => self.eof(),
        }
    }

    /// `Infinity` or `NaN` after a sign or at the start of a value.
    fn word(&mut self, word: &str) -> PResult<()> {
        for expected in word.chars() {
            match self.peek() {
                Some(c) if c == expected => {
                    self.bump();
                }
                Some(c) => return Err(self.invalid(c, "in numeric literal")),
                None => return Err(self.eof()),
            }
        }
        Ok(())
    }

    /// `123`, `1.5`, `.5`, `5.`, `1e10`; a leading zero ends the integer part, so `01` is an
    /// error at the `1`, as in Go.
    fn decimal(&mut self) -> PResult<f64> {
        let mut text = String::new();
        let mut int_digits = 0;
        match self.peek() {
            Some('0') => {
                text.push('0');
                self.bump();
                int_digits = 1;
            }
            Some('1'..='9') => {
                while let Some(c @ '0'..='9') = self.peek() {
                    text.push(c);
                    self.bump();
                    int_digits += 1;
                }
            }
            Some('.') => {}
            _ => return Err(self.unexpected_in_number()),
        }
        let mut frac_digits = 0;
        if self.peek() == Some('.') {
            text.push('.');
            self.bump();
            while let Some(c @ '0'..='9') = self.peek() {
                text.push(c);
                self.bump();
                frac_digits += 1;
            }
            if int_digits == 0 && frac_digits == 0 {
                return Err(self.unexpected_in_number());
            }
        }
        if let Some(e @ ('e' | 'E')) = self.peek() {
            text.push(e);
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            let mut exp_digits = 0;
            while let Some(c @ '0'..='9') = self.peek() {
                text.push(c);
                self.bump();
                exp_digits += 1;
            }
            if exp_digits == 0 {
                return Err(match self.peek() {
                    Some(c) => self.invalid(c, "in exponent of numeric literal"),
                    None => self.eof(),
                });
            }
        }
        // Rust's parser takes `5.` and `.5` as they are; the digits were checked above.
        let text = if text.ends_with('.') {
            format!("{text}0")
        } else {
            text
        };
        text.parse::<f64>().map_err(|_| self.unexpected_in_number())
    }
}

/// JSON5 whitespace: JSON's four, plus vertical tab, form feed, no-break space, the line and
/// paragraph separators, the byte-order mark and the other Unicode space separators.
fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '\u{b}'
            | '\u{c}'
            | '\u{a0}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
    ) || (c as u32 > 0x7f && c.is_whitespace())
}

fn is_ident_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_ascii_alphabetic() || (!c.is_ascii() && c.is_alphabetic())
}

fn is_ident_part(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || (!c.is_ascii() && c.is_alphanumeric())
}

/// Go's `quoteChar`: the character in single quotes, escaped as `strconv.Quote` escapes it.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        '\\' => "'\\\\'".to_string(),
        '\u{7}' => "'\\a'".to_string(),
        '\u{8}' => "'\\b'".to_string(),
        '\u{c}' => "'\\f'".to_string(),
        '\n' => "'\\n'".to_string(),
        '\r' => "'\\r'".to_string(),
        '\t' => "'\\t'".to_string(),
        '\u{b}' => "'\\v'".to_string(),
        c if (c as u32) < 0x20 || c == '\u{7f}' => format!("'\\x{:02x}'", c as u32),
        c if c.is_control() || c.is_whitespace() && c != ' ' => {
            format!("'\\u{:04x}'", c as u32)
        }
        c => format!("'{c}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Kind {
        match parse(text) {
            Ok(v) => v.kind,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(v) => panic!("{text:?} parsed: {v:?}"),
            Err(e) => format!("[{}:{}]: {}", e.line, e.col, e.message),
        }
    }

    fn num(text: &str) -> f64 {
        match ok(text) {
            Kind::Number(n) => n,
            other => panic!("{other:?}"),
        }
    }

    fn string(text: &str) -> String {
        match ok(text) {
            Kind::String(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_json() {
        let kind = ok(r#"{"a": [1, "x", true, false, null], "b": {}}"#);
        let Kind::Object(members) = kind else {
            panic!()
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].key, "a");
        let Kind::Array(items) = &members[0].value.kind else {
            panic!()
        };
        assert_eq!(items[0].kind, Kind::Number(1.0));
        assert_eq!(items[1].kind, Kind::String("x".into()));
        assert_eq!(items[2].kind, Kind::Bool(true));
        assert_eq!(items[3].kind, Kind::Bool(false));
        assert_eq!(items[4].kind, Kind::Null);
    }

    #[test]
    fn json5_extensions() {
        let kind = ok("// head\n{ unquoted: 'single', $x_1: \"d\", /* c */ trailing: [1, 2,], }\n");
        let Kind::Object(members) = kind else {
            panic!()
        };
        let keys: Vec<_> = members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["unquoted", "$x_1", "trailing"]);
        assert_eq!(members[0].value.kind, Kind::String("single".into()));
    }

    #[test]
    fn numbers() {
        assert_eq!(num("0x10"), 16.0);
        assert_eq!(num("-0XfF"), -255.0);
        assert_eq!(num(".5"), 0.5);
        assert_eq!(num("5."), 5.0);
        assert_eq!(num("+3"), 3.0);
        assert_eq!(num("1e3"), 1000.0);
        assert_eq!(num("1.5E-1"), 0.15);
        assert_eq!(num("Infinity"), f64::INFINITY);
        assert_eq!(num("-Infinity"), f64::NEG_INFINITY);
        assert!(num("NaN").is_nan());
        assert_eq!(num("0"), 0.0);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(r#""a\"b\\c\/d\n\t""#), "a\"b\\c/d\n\t");
        assert_eq!(string(r"'it\'s'"), "it's");
        assert_eq!(string(r#"'say "hi"'"#), "say \"hi\"");
        assert_eq!(string(r#""\x41\u00e9\uD83D\uDE00""#), "Aé😀");
        assert_eq!(string("\"line \\\ncontinued\""), "line continued");
        assert_eq!(string("\"crlf \\\r\ncontinued\""), "crlf continued");
        assert_eq!(string(r#""\a\0""#), "a\0");
        assert_eq!(string(r#""\uD800x""#), "\u{fffd}x");
        assert_eq!(string("\"tab\tinside\""), "tab\tinside");
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let Kind::Object(members) = ok("{a: 1,\n b: 2,\n a: 3}") else {
            panic!()
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].key, "a");
        assert_eq!(members[0].value.kind, Kind::Number(3.0));
        assert_eq!(members[0].key_pos, Pos { line: 3, col: 2 });
    }

    #[test]
    fn many_keys_and_duplicates() {
        let keys: Vec<String> = (0..100_000)
            .map(|i| format!("k{}: {i}", i % 50_000))
            .collect();
        let Kind::Object(members) = ok(&format!("{{{}}}", keys.join(","))) else {
            panic!()
        };
        assert_eq!(members.len(), 50_000);
        assert_eq!(members[7].value.kind, Kind::Number(50_007.0));
    }

    #[test]
    fn positions_are_lines_and_columns_of_values() {
        let value = parse("{\n  a: 1,\n  b: [\n    'x'\n  ]\n}").unwrap();
        let Kind::Object(members) = value.kind else {
            panic!()
        };
        assert_eq!(members[0].key_pos, Pos { line: 2, col: 3 });
        assert_eq!(members[0].value.pos, Pos { line: 2, col: 6 });
        let Kind::Array(items) = &members[1].value.kind else {
            panic!()
        };
        assert_eq!(items[0].pos, Pos { line: 4, col: 5 });
    }

    #[test]
    fn go_worded_errors() {
        assert_eq!(
            err("<>"),
            "[1:1]: invalid character '<' looking for beginning of value"
        );
        assert_eq!(
            err(r#"{"test": , "x": 1}"#),
            "[1:10]: invalid character ',' looking for beginning of value"
        );
        assert_eq!(err(""), "[1:1]: unexpected end of JSON input");
        assert_eq!(
            err("{\n  a: 1\n  b: 2\n}"),
            "[3:3]: invalid character 'b' after object key:value pair"
        );
        assert_eq!(
            err("[\n  {}\n  {}\n]"),
            "[3:3]: invalid character '{' after array element"
        );
        assert_eq!(
            err("{a 1}"),
            "[1:4]: invalid character '1' after object key"
        );
        assert_eq!(
            err("{1: 2}"),
            "[1:2]: invalid character '1' looking for beginning of object key string"
        );
        assert_eq!(
            err("{} x"),
            "[1:4]: invalid character 'x' after top-level value"
        );
        assert_eq!(err("tru"), "[1:4]: unexpected end of JSON input");
        assert_eq!(
            err("nulx"),
            "[1:4]: invalid character 'x' in literal null (expecting 'l')"
        );
        assert_eq!(
            err("01"),
            "[1:2]: invalid character '1' after top-level value"
        );
        assert_eq!(err("-x"), "[1:2]: invalid character 'x' in numeric literal");
        assert_eq!(
            err("1ex"),
            "[1:3]: invalid character 'x' in exponent of numeric literal"
        );
        assert_eq!(err("0x"), "[1:3]: unexpected end of JSON input");
        assert_eq!(
            err("\"a\nb\""),
            "[1:3]: invalid character '\\n' in string literal"
        );
        assert_eq!(
            err(r#""\u12x4""#),
            "[1:6]: invalid character 'x' in \\u hexadecimal character escape"
        );
        assert_eq!(
            err(r#""\1""#),
            "[1:3]: invalid character '1' in string escape code"
        );
        assert_eq!(err("/* open"), "[1:8]: unexpected end of JSON input");
        assert_eq!(err("{a: 'x"), "[1:7]: unexpected end of JSON input");
        assert_eq!(
            err("{a: localhost}"),
            "[1:5]: invalid character 'l' looking for beginning of value"
        );
    }

    #[test]
    fn error_display_has_context_lines_and_marker() {
        let e = parse("{\n  a: 1\n  b: 2\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error at line:col [3:3]: invalid character 'b' after object key:value pair\n\
             \x20   2:   a: 1\n\
             \x20   3:   b: 2\n\
             ---------^"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        let e = parse(&deep).unwrap_err();
        assert!(
            e.message.contains("nested deeper than 128"),
            "{}",
            e.message
        );
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&fine).is_ok());
        let too_deep = format!(
            "{}{}",
            "{a:".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&too_deep).is_err());
    }
}
