//! The parser of Consul's filter expressions (go-bexpr v0.1.2's grammar):
//!
//! ```text
//! Input    := _? Or _? EOF
//! Or       := And ( _ "or" _ And )*
//! And      := Not ( _ "and" _ Not )*
//! Not      := "not" _ Not | "(" _? Or _? ")" | Match
//! Match    := Selector _? ("==" | "!=") _? Value
//!           | Selector _ ("contains" | "not contains" | "matches" | "not matches") _ Value
//!           | Selector _ "is" _ ("empty" | "not" _ "empty")
//!           | Value _ ("in" | "not in") _ Selector
//! Selector := Ident ( "." Ident | "[" _? String _? "]" )*
//! Value    := String | Number | Ident ( "." Ident )*
//! ```
//!
//! Keywords are lower-case; strings are `"…"` (with Go's escapes) or
//! `` `raw` ``. An error names its line, column and byte offset as
//! go-bexpr does (`1:17 (16): …`).

use super::{Expr, Match, Op, Selector};

/// A malformed expression: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} ({}): {}", self.line, self.column, self.offset, self.message)
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { text, at: 0 };
    p.skip_space();
    let expr = p.or()?;
    p.skip_space();
    if p.at < text.len() {
        return Err(p.error(r#"no match found, expected: "and", "or", [ \t\r\n] or EOF"#));
    }
    Ok(expr)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ParseError {
            offset,
            line,
            column,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.at, message)
    }

    /// Skips whitespace; whether there was any.
    fn skip_space(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
            self.at += 1;
        }
        self.at > start
    }

    /// Consumes the keyword `word` when it is followed by a non-identifier
    /// character (so `notes` is not `not`).
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(word) && !rest[word.len()..].chars().next().is_some_and(is_ident) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// Consumes whitespace then `word` then requires whitespace after it;
    /// restores the position when any part is missing.
    fn spaced_keyword(&mut self, word: &str) -> bool {
        let start = self.at;
        if self.skip_space() && self.keyword(word) {
            let after = self.at;
            if self.skip_space() {
                return true;
            }
            self.at = after;
        }
        self.at = start;
        false
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.spaced_keyword("or") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.spaced_keyword("and") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        if self.keyword("not") {
            if self.skip_space() {
                // `not` as a selector's first word (`not in …`) is not the operator.
                let inner = self.not();
                if inner.is_ok() {
                    return inner.map(|e| Expr::Not(Box::new(e)));
                }
            }
            self.at = start;
        }
        if self.peek() == Some('(') {
            let open = self.at;
            self.at += 1;
            self.skip_space();
            let inner = self.or()?;
            self.skip_space();
            if self.peek() != Some(')') {
                return Err(self.error_at(open, r#"rule "grouping": Unmatched parentheses"#));
            }
            self.at += 1;
            return Ok(inner);
        }
        self.matcher().map(Expr::Match)
    }

    fn matcher(&mut self) -> Result<Match, ParseError> {
        let start = self.at;
        // `Value in Selector`: the left side may be any value.
        if let Ok(value) = self.value() {
            for (word, op) in [("in", Op::In), ("not in", Op::NotIn)] {
                let before = self.at;
                if self.spaced_words(word) {
                    let at = self.at;
                    let selector = self
                        .selector()
                        .map_err(|_| self.error_at(at, r#"rule "match": Invalid selector"#))?;
                    return Ok(Match {
                        selector,
                        op,
                        value: Some(value),
                    });
                }
                self.at = before;
            }
        }
        self.at = start;
        let selector = self.selector()?;
        let after_selector = self.at;
        let spaced = self.skip_space();
        for (symbol, op) in [("==", Op::Equal), ("!=", Op::NotEqual)] {
            if self.rest().starts_with(symbol) {
                self.at += symbol.len();
                self.skip_space();
                let value = self.value()?;
                return Ok(Match {
                    selector,
                    op,
                    value: Some(value),
                });
            }
        }
        if spaced {
            self.at = after_selector;
            for (words, op) in [
                ("contains", Op::In),
                ("not contains", Op::NotIn),
                ("matches", Op::Matches),
                ("not matches", Op::NotMatches),
            ] {
                let before = self.at;
                if self.spaced_words(words) {
                    let value = self.value()?;
                    return Ok(Match {
                        selector,
                        op,
                        value: Some(value),
                    });
                }
                self.at = before;
            }
            for (words, op) in [("is empty", Op::IsEmpty), ("is not empty", Op::IsNotEmpty)] {
                let before = self.at;
                self.skip_space();
                if self.words(words) && !self.peek().is_some_and(is_ident) {
                    return Ok(Match {
                        selector,
                        op,
                        value: None,
                    });
                }
                self.at = before;
            }
            // `Selector in …` reads as a value and finds no selector after.
            let before = self.at;
            self.skip_space();
            if self.keyword("in") {
                return Err(self.error_at(start, r#"rule "match": Invalid selector"#));
            }
            self.at = before;
        }
        self.skip_space();
        Err(self
            .error(r#"no match found, expected: "!=", "==", "contains", "in", "is", "matches", "not" or [ \t\r\n]"#))
    }

    /// Consumes `words` (space-separated keywords, any whitespace between).
    fn words(&mut self, words: &str) -> bool {
        let start = self.at;
        for (i, word) in words.split(' ').enumerate() {
            if i > 0 && !self.skip_space() {
                self.at = start;
                return false;
            }
            if !self.keyword(word) {
                self.at = start;
                return false;
            }
        }
        true
    }

    /// Whitespace, `words`, whitespace.
    fn spaced_words(&mut self, words: &str) -> bool {
        let start = self.at;
        if self.skip_space() && self.words(words) && self.skip_space() {
            return true;
        }
        self.at = start;
        false
    }

    fn ident(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        if !rest.chars().next().is_some_and(is_ident_start) {
            return None;
        }
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        self.at += len;
        Some(&rest[..len])
    }

    fn selector(&mut self) -> Result<Selector, ParseError> {
        let Some(first) = self.ident() else {
            return Err(self.error(r#"no match found, expected: "(", "not", [ \t\r\n] or [a-zA-Z]"#));
        };
        let mut path = vec![first.to_owned()];
        loop {
            match self.peek() {
                Some('.') => {
                    self.at += 1;
                    match self.ident() {
                        Some(id) => path.push(id.to_owned()),
                        None => return Err(self.error("no match found, expected: [a-zA-Z]")),
                    }
                }
                Some('[') => {
                    let open = self.at;
                    self.at += 1;
                    self.skip_space();
                    let key = match self.peek() {
                        Some('"' | '`') => self.string()?,
                        _ => return Err(self.error_at(open, r#"rule "index": Invalid index"#)),
                    };
                    self.skip_space();
                    if self.peek() != Some(']') {
                        return Err(self.error_at(open, r#"rule "index": Invalid index"#));
                    }
                    self.at += 1;
                    path.push(key);
                }
                _ => return Ok(Selector(path)),
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        let quote = self.peek().unwrap_or('"');
        self.at += 1;
        let Some(len) = self.rest().find(quote) else {
            return Err(self.error_at(start, r#"rule "string": Unterminated string literal"#));
        };
        let body = &self.rest()[..len];
        self.at += len + 1;
        if quote == '`' {
            return Ok(body.to_owned());
        }
        unescape(body).ok_or_else(|| self.error_at(start, r#"rule "string": invalid syntax"#))
    }

    fn value(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some('"' | '`') => self.string(),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.at;
                let rest = self.rest();
                let len = rest
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.'))
                    .map_or(rest.len(), |(i, _)| i);
                let text = &rest[..len];
                self.at += len;
                let valid = number_prefix(text);
                if valid < text.len() {
                    return Err(self.error_at(start + valid, r#"rule "number": Invalid number literal"#));
                }
                Ok(text.to_owned())
            }
            Some(c) if is_ident_start(c) => {
                let mut words = vec![self.ident().unwrap_or_default()];
                while self.peek() == Some('.') && self.rest()[1..].chars().next().is_some_and(is_ident_start) {
                    self.at += 1;
                    words.push(self.ident().unwrap_or_default());
                }
                Ok(words.join("."))
            }
            _ => Err(self.error(r#"no match found, expected: "-", "0", "\"", "`", [ \t\r\n], [1-9] or [a-zA-Z]"#)),
        }
    }
}

/// How much of `text` is a number as the grammar has it:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
fn number_prefix(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return i,
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    i
}

/// Go's `strconv.Unquote` escapes for a double-quoted string's body.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &[&str], op: Op, value: Option<&str>) -> Expr {
        Expr::Match(Match {
            selector: Selector(path.iter().map(|s| (*s).to_owned()).collect()),
            op,
            value: value.map(str::to_owned),
        })
    }

    #[test]
    fn every_match_form_parses() {
        let cases = [
            (
                "Service.Service == web",
                m(&["Service", "Service"], Op::Equal, Some("web")),
            ),
            (
                "Service.Port!=8080",
                m(&["Service", "Port"], Op::NotEqual, Some("8080")),
            ),
            (
                r#"Service.Meta["team name"] == "a b""#,
                m(&["Service", "Meta", "team name"], Op::Equal, Some("a b")),
            ),
            ("Service.Tags contains v1", m(&["Service", "Tags"], Op::In, Some("v1"))),
            ("v1 in Service.Tags", m(&["Service", "Tags"], Op::In, Some("v1"))),
            ("v1 not in Service.Tags", m(&["Service", "Tags"], Op::NotIn, Some("v1"))),
            (
                "Service.Tags not contains v1",
                m(&["Service", "Tags"], Op::NotIn, Some("v1")),
            ),
            (
                "Service.Service matches `^we`",
                m(&["Service", "Service"], Op::Matches, Some("^we")),
            ),
            (
                "Service.Service not matches \"b\"",
                m(&["Service", "Service"], Op::NotMatches, Some("b")),
            ),
            ("Service.Tags is empty", m(&["Service", "Tags"], Op::IsEmpty, None)),
            (
                "Service.Tags is not empty",
                m(&["Service", "Tags"], Op::IsNotEmpty, None),
            ),
            (
                "Checks.Status == passing",
                m(&["Checks", "Status"], Op::Equal, Some("passing")),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let e = parse("a == 1 or not b == 2 and (c == 3)").unwrap();
        let want = Expr::Or(
            Box::new(m(&["a"], Op::Equal, Some("1"))),
            Box::new(Expr::And(
                Box::new(Expr::Not(Box::new(m(&["b"], Op::Equal, Some("2"))))),
                Box::new(m(&["c"], Op::Equal, Some("3"))),
            )),
        );
        assert_eq!(e, want);
        // `notes` is a selector, not `not` then `es`.
        assert_eq!(parse("notes == x"), Ok(m(&["notes"], Op::Equal, Some("x"))));
    }

    #[test]
    fn errors_name_their_position_as_go_bexpr_does() {
        let at = |text: &str| parse(text).unwrap_err().to_string();
        assert!(
            at("Service.Service = web").starts_with("1:17 (16): no match found"),
            "{}",
            at("Service.Service = web")
        );
        assert!(at("Service.Service == web AND x == y").starts_with("1:24 (23)"));
        assert_eq!(
            at(r#"Service.Service == "unterminated"#),
            r#"1:20 (19): rule "string": Unterminated string literal"#
        );
        assert_eq!(at("(a == b"), r#"1:1 (0): rule "grouping": Unmatched parentheses"#);
        assert_eq!(
            at("Service.Port == 80x"),
            r#"1:19 (18): rule "number": Invalid number literal"#
        );
        assert_eq!(at("Service.Port in 80"), r#"1:17 (16): rule "match": Invalid selector"#);
        assert!(at("Service.Service ==").starts_with("1:19 (18): no match found"));
        assert!(at("").starts_with("1:1 (0)"));
    }
}
