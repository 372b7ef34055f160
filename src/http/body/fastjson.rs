//! A scanner for the one body shape the hot endpoints see: a flat JSON object whose values are
//! strings, plain decimals or lists of plain decimals.
//!
//! serde_json spent ~16 ns on each of a body's 365 prices (5.8 us a body, measured), a fifth of
//! a `/risk-score`'s CPU. This scanner reads the same bodies in a single pass without serde's
//! per-element machinery, and gives up (`None`) on anything it does not know, so that the
//! caller takes serde_json's path for it: escapes in a string, a sign or an exponent, more than
//! 18 digits, a leading zero, any other value type, a repeated or unknown key, trailing bytes.
//! Where it answers, it answers exactly what serde_json would: a decimal with fraction digits
//! `k` and digits `m` is `m as f64 / 10^k`, serde_json's own formula for such numbers (without
//! its `float_roundtrip` feature, which this project does not enable).

/// Most digits of a number read here: `m < 10^18` never overflows a `u64`.
const MAX_DIGITS: usize = 18;

/// `10^k` for the fraction digits of a number read here.
const POW10: [f64; MAX_DIGITS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// A value of the object.
#[derive(Debug, PartialEq)]
pub(crate) enum Field<'a> {
    Str(&'a str),
    Number(Number),
    Numbers(Vec<f64>),
}

/// A plain decimal: its value, and the integer when it has no fraction part.
#[derive(Debug, PartialEq)]
pub(crate) struct Number {
    pub value: f64,
    pub integer: Option<i64>,
}

/// Reads `bytes` as one flat object, handing each key and value to `field` in order; `None`
/// when the body is not of the shape described in the module docs or `field` returns `None`.
pub(crate) fn object<'a>(
    bytes: &'a [u8],
    mut field: impl FnMut(&'a str, Field<'a>) -> Option<()>,
) -> Option<()> {
    let mut s = Scanner { b: bytes, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let value = match s.peek()? {
                b'"' => Field::Str(s.string()?),
                b'[' => Field::Numbers(s.numbers()?),
                _ => Field::Number(s.number()?),
            };
            field(key, value)?;
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(())
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => {}
            }
        }
        std::str::from_utf8(&self.b[start..self.i - 1]).ok()
    }

    /// `[` plain decimals separated by commas `]`.
    fn numbers(&mut self) -> Option<Vec<f64>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(self.b.len().saturating_sub(self.i) / 8);
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(out);
        }
        loop {
            out.push(self.number()?.value);
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(out),
                _ => return None,
            }
        }
    }

    /// `0` or `[1-9][0-9]*`, then optionally `.` and at least one digit; at most
    /// [`MAX_DIGITS`] digits in all, and no exponent after.
    fn number(&mut self) -> Option<Number> {
        let b = self.b;
        let mut i = self.i;
        // Wrapping: a number with too many digits is refused below, whatever `m` became.
        let mut m = 0u64;
        let mut digits = |i: &mut usize| {
            let start = *i;
            while let Some(c @ b'0'..=b'9') = b.get(*i) {
                m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                *i += 1;
            }
            *i - start
        };
        let start = i;
        let whole = digits(&mut i);
        let has_point = b.get(i) == Some(&b'.');
        let fraction = if has_point {
            i += 1;
            digits(&mut i)
        } else {
            0
        };
        let leading_zero = whole > 1 && b[start] == b'0';
        if whole == 0 || leading_zero || (has_point && fraction == 0) {
            return None;
        }
        if whole + fraction > MAX_DIGITS || matches!(b.get(i), Some(b'e' | b'E')) {
            return None;
        }
        self.i = i;
        Some(Number {
            value: m as f64 / POW10[fraction],
            integer: if has_point {
                None
            } else {
                i64::try_from(m).ok()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<Vec<(String, Field<'_>)>> {
        let mut out = Vec::new();
        object(text.as_bytes(), |k, v| {
            out.push((k.to_owned(), v));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn numbers_are_bit_for_bit_what_serde_json_reads() {
        let mut state = 9u64;
        let mut next = move || {
            // SplitMix64.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut texts: Vec<String> = [
            "0",
            "0.5",
            "7",
            "9170.0",
            "8810.79",
            "16547.49609375",
            "0.30000000000000004",
            "123456789012345678",
            "0.000000000000000001",
            "99999.99999999999",
            "1.0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for _ in 0..20_000 {
            let int = next() % 10u64.pow(1 + (next() % 9) as u32);
            let frac_digits = (next() % 10) as usize;
            let frac = next() % 10u64.pow(frac_digits as u32).max(1);
            texts.push(if frac_digits == 0 {
                format!("{int}")
            } else {
                format!("{int}.{frac:0frac_digits$}")
            });
            texts.push(format!(
                "{}",
                (next() >> 11) as f64 / (1u64 << 53) as f64 * 1e5
            ));
        }
        for text in &texts {
            let ours = Scanner {
                b: text.as_bytes(),
                i: 0,
            }
            .number();
            let Some(ours) = ours else {
                assert!(text.len() > MAX_DIGITS, "{text} refused");
                continue;
            };
            let theirs: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(ours.value.to_bits(), theirs.to_bits(), "{text}");
            assert_eq!(
                ours.integer,
                serde_json::from_str::<i64>(text).ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_flat_object_reads_in_order_with_any_whitespace() {
        let got = parse(" {\n\"symbol\" :\t\"BTC\", \"historical_prices\":[ 1.5 ,2 ],\"days_ahead\":3 ,\"p\":[]} \r\n").unwrap();
        assert_eq!(
            got,
            vec![
                ("symbol".into(), Field::Str("BTC")),
                ("historical_prices".into(), Field::Numbers(vec![1.5, 2.0])),
                (
                    "days_ahead".into(),
                    Field::Number(Number {
                        value: 3.0,
                        integer: Some(3)
                    })
                ),
                ("p".into(), Field::Numbers(vec![])),
            ]
        );
        assert_eq!(parse("{}").unwrap(), vec![]);
    }

    #[test]
    fn anything_else_is_left_to_serde_json() {
        for text in [
            r#"{"symbol": "B\u0054C"}"#,
            r#"{"symbol": "B\"TC"}"#,
            "{\"symbol\": \"B\tTC\"}",
            r#"{"p": [-1.5]}"#,
            r#"{"p": [1e5]}"#,
            r#"{"p": [1.5E2]}"#,
            r#"{"p": [01.5]}"#,
            r#"{"p": [1.]}"#,
            r#"{"p": [.5]}"#,
            r#"{"p": [1,]}"#,
            r#"{"p": [1 2]}"#,
            r#"{"p": [1234567890123456789]}"#,
            r#"{"p": ["1"]}"#,
            r#"{"p": [null]}"#,
            r#"{"p": [[1]]}"#,
            r#"{"p": null}"#,
            r#"{"p": true}"#,
            r#"{"p": {"q": 1}}"#,
            r#"{"p": 1,}"#,
            r#"{"p": 1} x"#,
            r#"{"p": 1"#,
            r#"["p"]"#,
            "",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }
}
