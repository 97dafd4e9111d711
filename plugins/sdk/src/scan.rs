//! Reading one top-level key of an object's JSON without parsing the rest.
//!
//! Policies ask each snapshot object for its `kind` (often its name or labels too) before
//! deciding whether to parse it. Deserialising a header struct from the whole text still
//! scans every byte of it: on a 1000-pod snapshot that scan, repeated for each lookup, was
//! most of the guest's time (issue #15). The host writes `apiVersion` and `kind` first, so
//! stopping at the key reads a few dozen bytes; any other order still works, because every
//! value before the key is skipped by the JSON grammar.

/// The text is not a JSON object, at least up to where the key was found (what follows
/// the key's value is not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// serde_json refuses nesting deeper than this; so does the scan, keeping the recursion
/// bounded on hostile input.
const MAX_DEPTH: usize = 128;

/// The raw text of the value of the top-level `key` of the object in `json` (a string
/// value keeps its quotes and escapes), or `None` when the object has no such key.
pub(crate) fn field<'a>(json: &'a str, key: &str) -> Result<Option<&'a str>, Malformed> {
    let mut c = Cursor {
        text: json.as_bytes(),
        at: 0,
    };
    c.space();
    c.expect(b'{')?;
    c.space();
    if c.peek() == Some(b'}') {
        c.at += 1;
        return c.finish().map(|()| None);
    }
    loop {
        c.space();
        let key_start = c.at;
        let escaped = c.string()?;
        let raw_key = &json[key_start..c.at];
        c.space();
        c.expect(b':')?;
        c.space();
        let value_start = c.at;
        c.value(1)?;
        if key_matches(raw_key, escaped, key) {
            return Ok(Some(&json[value_start..c.at]));
        }
        c.space();
        match c.next() {
            Some(b',') => {}
            Some(b'}') => return c.finish().map(|()| None),
            _ => return Err(Malformed),
        }
    }
}

/// The value of a JSON string literal (`"..."`, as [`field`] returns it), escapes decoded;
/// `None` for any other value.
pub(crate) fn string(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Into::into)
    } else {
        Some(inner.into())
    }
}

/// Whether a quoted key (as in the text) names `key`. An escaped key is decoded first:
/// `"ki\u006ed"` is `kind` to serde, so it is here.
fn key_matches(raw: &str, escaped: bool, key: &str) -> bool {
    if escaped {
        serde_json::from_str::<String>(raw).is_ok_and(|k| k == key)
    } else {
        raw.len() == key.len() + 2 && &raw[1..raw.len() - 1] == key
    }
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn expect(&mut self, want: u8) -> Result<(), Malformed> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// Only whitespace may follow the object.
    fn finish(&mut self) -> Result<(), Malformed> {
        self.space();
        if self.at == self.text.len() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Skips a string literal; returns whether it holds an escape.
    fn string(&mut self) -> Result<bool, Malformed> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            match self.next().ok_or(Malformed)? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next().ok_or(Malformed)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                if !self.next().is_some_and(|h| h.is_ascii_hexdigit()) {
                                    return Err(Malformed);
                                }
                            }
                        }
                        _ => return Err(Malformed),
                    }
                }
                // Control characters must be escaped inside a JSON string.
                0..=0x1f => return Err(Malformed),
                _ => {}
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), Malformed> {
        match self.peek().ok_or(Malformed)? {
            b'"' => self.string().map(drop),
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Malformed),
        }
    }

    /// An object (`keyed`) or an array, opening bracket at the cursor.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Result<(), Malformed> {
        if depth >= MAX_DEPTH {
            return Err(Malformed);
        }
        self.at += 1;
        self.space();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            if keyed {
                self.string()?;
                self.space();
                self.expect(b':')?;
                self.space();
            }
            self.value(depth + 1)?;
            self.space();
            match self.next() {
                Some(b',') => {}
                Some(c) if c == close => return Ok(()),
                _ => return Err(Malformed),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Malformed> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Malformed),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits1()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits1()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|d| d.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn digits1(&mut self) -> Result<(), Malformed> {
        if !self.peek().is_some_and(|d| d.is_ascii_digit()) {
            return Err(Malformed);
        }
        self.digits();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(json: &str) -> Result<Option<&str>, Malformed> {
        field(json, "kind")
    }

    #[test]
    fn finds_the_key_in_any_order_and_spacing() {
        assert_eq!(
            kind(r#"{"apiVersion":"v1","kind":"Pod"}"#),
            Ok(Some(r#""Pod""#))
        );
        assert_eq!(
            kind(r#"{"kind":"Pod","apiVersion":"v1"}"#),
            Ok(Some(r#""Pod""#))
        );
        assert_eq!(
            kind(" \n{ \"metadata\" : {\"name\": \"a\"} ,\t\"kind\" :\r\n\"Pod\" } "),
            Ok(Some(r#""Pod""#))
        );
        assert_eq!(
            field(
                r#"{"kind":"Pod","metadata":{"name":"a","labels":{"x":"y"}},"spec":{}}"#,
                "metadata"
            ),
            Ok(Some(r#"{"name":"a","labels":{"x":"y"}}"#))
        );
    }

    #[test]
    fn skips_every_kind_of_value_before_the_key() {
        let json = r#"{"s":"a \"kind\": \\ \u00e9 \/ \n","n":-12.5e+3,"z":0,"f":1E9,"t":true,
            "no":false,"nil":null,"a":[1,[2,{"kind":"Nested"}],"]",{}],"o":{"kind":"Inner",
            "x":{"}":"{"}},"e":{},"ea":[],"kind":"Outer"}"#;
        assert_eq!(kind(json), Ok(Some(r#""Outer""#)));
    }

    #[test]
    fn a_kind_inside_another_value_is_not_the_objects() {
        // ownerReferences and spec carry `kind` keys of their own; the object has none.
        let json = r#"{"apiVersion":"v1","metadata":{"name":"p","ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"s"}]},"spec":{"kind":"Fake"}}"#;
        assert_eq!(kind(json), Ok(None));
        // A value that spells a key is not one either.
        assert_eq!(
            kind(r#"{"note":"\"kind\":\"Pod\"","x":["kind","Pod"]}"#),
            Ok(None)
        );
    }

    #[test]
    fn escaped_keys_are_decoded() {
        assert_eq!(kind(r#"{"ki\u006ed":"Pod"}"#), Ok(Some(r#""Pod""#)));
        assert_eq!(
            kind(r#"{"kind\u0000":"Fake","kind":"Pod"}"#),
            Ok(Some(r#""Pod""#))
        );
        assert_eq!(kind(r#"{"kin":"A","kinds":"B","Kind":"C"}"#), Ok(None));
    }

    #[test]
    fn strings_decode_escapes_and_only_strings_are_strings() {
        assert_eq!(string(r#""Pod""#).as_deref(), Some("Pod"));
        assert_eq!(string(r#""""#).as_deref(), Some(""));
        assert_eq!(string(r#""P\u006fd\"\\\n""#).as_deref(), Some("Pod\"\\\n"));
        assert_eq!(string("null"), None);
        assert_eq!(string("12"), None);
        assert_eq!(string(r#"{"a":"b"}"#), None);
        // A lone surrogate is no string serde accepts.
        assert_eq!(string(r#""\ud800""#), None);
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "",
            "   ",
            "[]",
            r#""kind""#,
            "null",
            "{",
            r#"{"kind""#,
            r#"{"kind":"#,
            r#"{"kind":"Pod"#,
            r#"{kind:"Pod"}"#,
            r#"{'kind':'Pod'}"#,
            r#"{"a":1 "kind":"Pod"}"#,
            r#"{"a":1,,"kind":"Pod"}"#,
            r#"{,"kind":"Pod"}"#,
            r#"{"a":01,"kind":"Pod"}"#,
            r#"{"a":1.,"kind":"Pod"}"#,
            r#"{"a":.5,"kind":"Pod"}"#,
            r#"{"a":1e,"kind":"Pod"}"#,
            r#"{"a":+1,"kind":"Pod"}"#,
            r#"{"a":tru,"kind":"Pod"}"#,
            r#"{"a":nul,"kind":"Pod"}"#,
            r#"{"a":"\x","kind":"Pod"}"#,
            r#"{"a":"\u12g4","kind":"Pod"}"#,
            "{\"a\":\"tab\there\",\"kind\":\"Pod\"}",
            r#"{"a":[1,2,"kind":"Pod"}"#,
            r#"{"a":[1,2},"kind":"Pod"}"#,
            r#"{"a":{"b"},"kind":"Pod"}"#,
            r#"{"a":{"b":1,},"kind":"Pod"}"#,
            r#"{"a":[1,],"kind":"Pod"}"#,
            r#"{"a":1}x"#,
            r#"{"a":1},"#,
            r#"{}{}"#,
        ] {
            assert_eq!(kind(bad), Err(Malformed), "{bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(bad).is_err(),
                "{bad:?} is a JSON object: the test is wrong"
            );
        }
        assert_eq!(kind("{}"), Ok(None));
        assert_eq!(kind(" { } "), Ok(None));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            r#"{{"a":{}{},"kind":"Pod"}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(kind(&deep), Err(Malformed));
        let fine = format!(
            r#"{{"a":{}{},"kind":"Pod"}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(kind(&fine), Ok(Some(r#""Pod""#)));
    }
}
