//! A small evaluator for the SPL `eval` expressions the Splunk app ships, so
//! a test can run the app's own `EVAL-` and `INGEST_EVAL` text against
//! Sluice's output instead of trusting a copy of it. It covers the forms
//! the app uses and follows Splunk's documented rules for them: a field that
//! is absent is null, null propagates through arithmetic, comparison and
//! concatenation, `AND`/`OR` treat null as false, `mvappend` skips nulls,
//! numbers print without a trailing `.0`. Anything else is an error, so an
//! expression the app starts to use that this does not know fails loudly.

use regex::Regex;
use std::collections::HashMap;

/// A value: SPL fields are strings, numbers or multivalues; booleans exist
/// only inside conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    Num(f64),
    Str(String),
    Multi(Vec<String>),
    Bool(bool),
}

impl V {
    /// The value as a field holds it (booleans cannot be stored: null).
    pub fn text(&self) -> Option<String> {
        match self {
            V::Null | V::Bool(_) => None,
            V::Num(n) => Some(num_text(*n)),
            V::Str(s) => Some(s.clone()),
            V::Multi(m) => Some(m.join("\n")),
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            V::Num(n) => Some(*n),
            V::Str(s) => s.trim().parse().ok(),
            V::Multi(m) if m.len() == 1 => m[0].trim().parse().ok(),
            _ => None,
        }
    }

    fn string(&self) -> Option<String> {
        match self {
            V::Multi(m) => m.first().cloned(),
            v => v.text(),
        }
    }

    pub fn values(&self) -> Vec<String> {
        match self {
            V::Null | V::Bool(_) => Vec::new(),
            V::Multi(m) => m.clone(),
            v => v.text().into_iter().collect(),
        }
    }

    pub fn truth(&self) -> Result<bool, String> {
        match self {
            V::Bool(b) => Ok(*b),
            V::Null => Ok(false),
            other => Err(format!("not a condition: {other:?}")),
        }
    }
}

fn num_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Name(String),
    Op(&'static str),
}

const OPS: [&str; 16] = [
    "==", "!=", "<=", ">=", "(", ")", ",", "+", "-", "*", "/", "%", ".", "<", ">", "=",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' {
            // "text" is a string; 'name' a field name.
            let mut s = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quote in {src}")),
                    Some(&q) if q == c => break,
                    Some(b'\\') if c == b'"' && matches!(b.get(i + 1), Some(b'"' | b'\\')) => {
                        s.push(b[i + 1] as char);
                        i += 2;
                        continue;
                    }
                    Some(_) => {
                        let ch = src[i..].chars().next().unwrap();
                        s.push(ch);
                        i += ch.len_utf8();
                        continue;
                    }
                }
            }
            i += 1;
            out.push(if c == b'"' { Tok::Str(s) } else { Tok::Name(s) });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let text = &src[start..i];
            out.push(Tok::Num(
                text.parse().map_err(|_| format!("bad number {text}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Name(src[start..i].to_string()));
        } else {
            let op = OPS
                .iter()
                .find(|op| src[i..].starts_with(**op))
                .ok_or_else(|| format!("unexpected {:?} in {src}", c as char))?;
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(V),
    Field(String),
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(&'static str, Box<Expr>, Box<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek() == Some(&Tok::Op(static_op(op))) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.word("OR") {
            l = Expr::Bin("OR", Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.not()?;
        while self.word("AND") {
            l = Expr::Bin("AND", Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.word("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.add()?;
        for op in ["==", "!=", "<=", ">=", "<", ">", "="] {
            if self.eat(op) {
                let op = if op == "=" { "==" } else { static_op(op) };
                return Ok(Expr::Bin(op, Box::new(l), Box::new(self.add()?)));
            }
        }
        Ok(l)
    }

    fn add(&mut self) -> Result<Expr, String> {
        let mut l = self.mul()?;
        loop {
            let op = ["+", "-", "."].into_iter().find(|op| self.eat(op));
            match op {
                Some(op) => l = Expr::Bin(static_op(op), Box::new(l), Box::new(self.mul()?)),
                None => return Ok(l),
            }
        }
    }

    fn mul(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        loop {
            let op = ["*", "/", "%"].into_iter().find(|op| self.eat(op));
            match op {
                Some(op) => l = Expr::Bin(static_op(op), Box::new(l), Box::new(self.unary()?)),
                None => return Ok(l),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Expr::Lit(V::Num(n))),
            Some(Tok::Str(s)) => Ok(Expr::Lit(V::Str(s))),
            Some(Tok::Op("(")) => {
                let e = self.or()?;
                if !self.eat(")") {
                    return Err("missing )".into());
                }
                Ok(e)
            }
            Some(Tok::Name(n)) => {
                if !self.eat("(") {
                    return Ok(Expr::Field(n));
                }
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.or()?);
                        if self.eat(")") {
                            break;
                        }
                        if !self.eat(",") {
                            return Err(format!("expected , or ) in the arguments of {n}"));
                        }
                    }
                }
                Ok(Expr::Call(n, args))
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

fn static_op(op: &str) -> &'static str {
    OPS.iter().find(|o| **o == op).copied().unwrap_or("?")
}

/// A parsed expression.
pub struct Compiled(Expr);

/// Parses an SPL eval expression.
pub fn parse(src: &str) -> Result<Compiled, String> {
    let mut p = Parser {
        toks: lex(src)?,
        at: 0,
    };
    let e = p.or()?;
    if p.at != p.toks.len() {
        return Err(format!("trailing tokens in {src}: {:?}", &p.toks[p.at..]));
    }
    Ok(Compiled(e))
}

/// Fields by name.
pub type Fields = HashMap<String, V>;

impl Compiled {
    /// Evaluates against `fields`.
    pub fn eval(&self, fields: &Fields) -> Result<V, String> {
        eval(&self.0, fields)
    }

    /// The fields it reads.
    pub fn fields(&self) -> Vec<String> {
        fn walk(e: &Expr, out: &mut Vec<String>) {
            match e {
                Expr::Field(n) => out.push(n.clone()),
                Expr::Lit(_) => {}
                Expr::Not(x) | Expr::Neg(x) => walk(x, out),
                Expr::Bin(_, l, r) => {
                    walk(l, out);
                    walk(r, out);
                }
                Expr::Call(_, args) => args.iter().for_each(|a| walk(a, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &mut out);
        out
    }
}

/// Splits `s` at `sep` outside quotes and parentheses (the assignments of
/// an `INGEST_EVAL`).
pub fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut cur) = (0i32, None::<char>, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

/// A PCRE pattern as the `regex` crate reads it (the app uses the common
/// subset); compiled once per thread.
fn re(pattern: &str) -> Result<Regex, String> {
    thread_local! {
        static COMPILED: std::cell::RefCell<HashMap<String, Regex>> = Default::default();
    }
    COMPILED.with(|c| {
        if let Some(r) = c.borrow().get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern).map_err(|e| e.to_string())?;
        c.borrow_mut().insert(pattern.to_string(), r.clone());
        Ok(r)
    })
}

fn bin(op: &str, l: V, r: V) -> Result<V, String> {
    if matches!(op, "AND" | "OR") {
        let (l, r) = (l.truth()?, r.truth()?);
        return Ok(V::Bool(if op == "AND" { l && r } else { l || r }));
    }
    if l == V::Null || r == V::Null {
        return Ok(V::Null);
    }
    match op {
        "." => Ok(V::Str(format!(
            "{}{}",
            l.string().unwrap_or_default(),
            r.string().unwrap_or_default()
        ))),
        "+" | "-" | "*" | "/" | "%" => {
            let (Some(a), Some(b)) = (l.num(), r.num()) else {
                if op == "+" {
                    return Ok(V::Str(format!(
                        "{}{}",
                        l.string().unwrap_or_default(),
                        r.string().unwrap_or_default()
                    )));
                }
                return Ok(V::Null);
            };
            Ok(V::Num(match op {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                _ => a % b,
            }))
        }
        _ => {
            let ord = match (l.num(), r.num()) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => l.string().partial_cmp(&r.string()),
            };
            let ord = ord.ok_or("incomparable")?;
            use std::cmp::Ordering::*;
            Ok(V::Bool(match op {
                "==" => ord == Equal,
                "!=" => ord != Equal,
                "<" => ord == Less,
                ">" => ord == Greater,
                "<=" => ord != Greater,
                _ => ord != Less,
            }))
        }
    }
}

fn eval(e: &Expr, f: &Fields) -> Result<V, String> {
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Field(n) => Ok(f.get(n).cloned().unwrap_or(V::Null)),
        Expr::Not(x) => Ok(V::Bool(!eval(x, f)?.truth()?)),
        Expr::Neg(x) => Ok(eval(x, f)?.num().map_or(V::Null, |n| V::Num(-n))),
        Expr::Bin(op, l, r) => bin(op, eval(l, f)?, eval(r, f)?),
        Expr::Call(name, args) => call(name, args, f),
    }
}

fn call(name: &str, args: &[Expr], f: &Fields) -> Result<V, String> {
    let arg = |i: usize| -> Result<V, String> {
        args.get(i)
            .map(|a| eval(a, f))
            .unwrap_or_else(|| Err(format!("{name}: argument {i} missing")))
    };
    let text = |i: usize| -> Result<Option<String>, String> { Ok(arg(i)?.string()) };
    Ok(match name {
        "if" => {
            if arg(0)?.truth()? {
                arg(1)?
            } else {
                arg(2)?
            }
        }
        "case" => {
            for pair in args.chunks(2) {
                if pair.len() == 2 && eval(&pair[0], f)?.truth()? {
                    return eval(&pair[1], f);
                }
            }
            V::Null
        }
        "coalesce" => {
            for a in args {
                let v = eval(a, f)?;
                if v != V::Null {
                    return Ok(v);
                }
            }
            V::Null
        }
        "isnull" => V::Bool(arg(0)? == V::Null),
        "isnotnull" => V::Bool(arg(0)? != V::Null),
        "null" => V::Null,
        "true" => V::Bool(true),
        "false" => V::Bool(false),
        "floor" => arg(0)?.num().map_or(V::Null, |n| V::Num(n.floor())),
        "tonumber" => match text(0)? {
            Some(s) => match args.len() {
                1 => s.trim().parse().map_or(V::Null, V::Num),
                _ => {
                    let base = arg(1)?.num().ok_or("tonumber: base")? as u32;
                    i64::from_str_radix(s.trim(), base).map_or(V::Null, |n| V::Num(n as f64))
                }
            },
            None => V::Null,
        },
        "tostring" => text(0)?.map_or(V::Null, V::Str),
        "len" => text(0)?.map_or(V::Null, |s| V::Num(s.chars().count() as f64)),
        "lower" => text(0)?.map_or(V::Null, |s| V::Str(s.to_lowercase())),
        "substr" => {
            let Some(s) = text(0)? else {
                return Ok(V::Null);
            };
            let chars: Vec<char> = s.chars().collect();
            let start = arg(1)?.num().ok_or("substr: start")? as i64;
            // 1-based; a negative start counts from the end.
            let from = if start < 0 {
                (chars.len() as i64 + start).max(0)
            } else {
                (start - 1).max(0)
            } as usize;
            let len = match args.len() {
                2 => chars.len(),
                _ => arg(2)?.num().ok_or("substr: length")?.max(0.0) as usize,
            };
            V::Str(chars.iter().skip(from).take(len).collect())
        }
        "match" => match (text(0)?, text(1)?) {
            (Some(s), Some(p)) => V::Bool(re(&p)?.is_match(&s)),
            _ => V::Bool(false),
        },
        "like" => match (text(0)?, text(1)?) {
            (Some(s), Some(p)) => {
                let mut pattern = String::from("^");
                for c in p.chars() {
                    match c {
                        '%' => pattern.push_str(".*"),
                        '_' => pattern.push('.'),
                        c => pattern.push_str(&regex::escape(&c.to_string())),
                    }
                }
                pattern.push('$');
                V::Bool(re(&pattern)?.is_match(&s))
            }
            _ => V::Bool(false),
        },
        "replace" => match (text(0)?, text(1)?, text(2)?) {
            (Some(s), Some(p), Some(with)) => {
                // SPL writes groups as \1; the regex crate as ${1}.
                let with = re(r"\\(\d)")?
                    .replace_all(&with.replace('$', "$$"), "$${$1}")
                    .into_owned();
                V::Str(re(&p)?.replace_all(&s, with.as_str()).into_owned())
            }
            _ => V::Null,
        },
        "split" => match (text(0)?, text(1)?) {
            (Some(s), Some(sep)) => V::Multi(s.split(sep.as_str()).map(String::from).collect()),
            _ => V::Null,
        },
        "mvcount" => match arg(0)? {
            V::Null => V::Null,
            v => V::Num(v.values().len() as f64),
        },
        "mvindex" => {
            let values = arg(0)?.values();
            let n = values.len() as i64;
            let at = |v: f64| {
                let i = v as i64;
                if i < 0 {
                    n + i
                } else {
                    i
                }
            };
            let start = at(arg(1)?.num().ok_or("mvindex: start")?);
            let end = match args.len() {
                2 => start,
                _ => at(arg(2)?.num().ok_or("mvindex: end")?).min(n - 1),
            };
            if start < 0 || start >= n || end < start {
                V::Null
            } else {
                multi(values[start as usize..=end as usize].to_vec())
            }
        }
        "mvjoin" => match arg(0)? {
            V::Null => V::Null,
            v => V::Str(v.values().join(&text(1)?.unwrap_or_default())),
        },
        "mvappend" => {
            let mut all = Vec::new();
            for a in args {
                all.extend(eval(a, f)?.values());
            }
            multi(all)
        }
        "mvfind" => {
            let p = re(&text(1)?.unwrap_or_default())?;
            arg(0)?
                .values()
                .iter()
                .position(|v| p.is_match(v))
                .map_or(V::Null, |i| V::Num(i as f64))
        }
        "nullif" => {
            let (a, b) = (arg(0)?, arg(1)?);
            if a.string().is_some() && a.string() == b.string() {
                V::Null
            } else {
                a
            }
        }
        "json_extract" | "spath" => {
            let raw = text(0)?.unwrap_or_default();
            let path = text(1)?.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
            match &v[path.as_str()] {
                serde_json::Value::Null => V::Null,
                serde_json::Value::String(s) => V::Str(s.clone()),
                other => V::Str(other.to_string()),
            }
        }
        "strptime" => match (text(0)?, text(1)?) {
            (Some(s), Some(fmt)) => strptime(&s, &fmt)?,
            _ => V::Null,
        },
        other => return Err(format!("function {other}() is not known to this evaluator")),
    })
}

/// One value stays single; none is null.
fn multi(values: Vec<String>) -> V {
    match values.len() {
        0 => V::Null,
        1 => V::Str(values.into_iter().next().unwrap_or_default()),
        _ => V::Multi(values),
    }
}

/// `strptime` for the one format the app uses, `%Y-%m-%dT%H:%M:%S%z`
/// (an offset of `+hhmm`); anything that does not fit is null, as in Splunk.
fn strptime(s: &str, fmt: &str) -> Result<V, String> {
    if fmt != "%Y-%m-%dT%H:%M:%S%z" {
        return Err(format!(
            "strptime format {fmt} is not known to this evaluator"
        ));
    }
    let format = time::format_description::parse_borrowed::<1>(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]",
    )
    .map_err(|e| e.to_string())?;
    Ok(time::OffsetDateTime::parse(s, &format)
        .map_or(V::Null, |t| V::Num(t.unix_timestamp() as f64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str, fields: &[(&str, &str)]) -> V {
        let f: Fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), V::Str(v.to_string())))
            .collect();
        parse(src).unwrap().eval(&f).unwrap()
    }

    #[test]
    fn the_forms_the_app_uses() {
        assert_eq!(ev("floor(TTL/10)*10", &[("TTL", "57")]), V::Num(50.0));
        assert_eq!(ev("coalesce(A, B)", &[("B", "b")]), V::Str("b".into()));
        assert_eq!(ev("if(isnull(A), 1, 2)", &[]), V::Num(1.0));
        assert_eq!(ev("A . \"x\"", &[]), V::Null, "null propagates");
        assert_eq!(
            ev(r#"replace(A, "^(\d+)\.(\d+)$", "\2-\1")"#, &[("A", "1.2")]),
            V::Str("2-1".into())
        );
        assert_eq!(
            ev(
                r#"mvjoin(mvindex(split(A, ":"), 0, 1), "+")"#,
                &[("A", "a:b:c")]
            ),
            V::Str("a+b".into())
        );
        assert_eq!(
            ev(r#"mvappend(null(), "a", null())"#, &[]),
            V::Str("a".into())
        );
        assert_eq!(
            ev(r#"mvfind(split(A, ","), "^3$")"#, &[("A", "2,3")]),
            V::Num(1.0)
        );
        assert_eq!(ev(r#"substr("0:0:0", 1, 3)"#, &[]), V::Str("0:0".into()));
        assert_eq!(
            ev(r#"case(A=="x", "X", true(), "other")"#, &[("A", "y")]),
            V::Str("other".into())
        );
        assert_eq!(
            ev("NOT A==1 AND B>2", &[("A", "2"), ("B", "3")]),
            V::Bool(true)
        );
        assert_eq!(
            ev(
                r#"strptime("2026-11-20T10:00:04+0000", "%Y-%m-%dT%H:%M:%S%z")"#,
                &[]
            ),
            V::Num(1_795_168_804.0)
        );
        assert_eq!(ev(r#"nullif(A, "")"#, &[("A", "")]), V::Null);
        assert_eq!(ev(r#"nullif(A, "")"#, &[("A", "x")]), V::Str("x".into()));
        assert_eq!(
            ev(r#"spath(R, "counted")"#, &[("R", r#"{"counted":true}"#)]),
            V::Str("true".into())
        );
        assert!(parse("frobnicate(A)")
            .unwrap()
            .eval(&Fields::new())
            .is_err());
    }
}
