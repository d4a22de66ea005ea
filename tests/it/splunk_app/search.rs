//! Whole searches of the DDoS overview, run over rows in memory: search
//! terms over events (the samples as a search sees them) or `| mstats` over
//! metric data points (Sluice's rollups as a metrics index holds them), then
//! the commands the panels pipe them into, with `spl.rs` for expressions.
//! It reads the forms the app writes and follows Splunk's documented rules
//! for them: terms match values whatever their case, `stats`, `mstats` and
//! `timechart` group by values in order and leave out rows that lack a
//! group-by field (`timechart` puts them under `NULL`), `per_second` is a
//! bucket's sum over its span, `mstats fillnull_value` stands in for a
//! missing dimension. Anything else is an error, so a panel that starts
//! using more fails loudly instead of being checked loosely.

use super::conf::Conf;
use super::spl::{self, Compiled, Fields, V};
use super::{conf, pairs, read_lookup, Lookup};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A result row, an event or a metric data point.
pub type Row = Fields;

/// What searches run over.
pub struct Data<'a> {
    /// Rows for search terms at the start of a search.
    pub events: &'a [Row],
    /// Rows for `mstats`: one per metric, with `metric_name` and `_value`.
    pub points: &'a [Row],
    /// The span `timechart` takes without `span=` (Splunk's follows the
    /// time range: 60 for an hour, 1800 for a day).
    pub default_span: u64,
}

/// `query` with every macro call replaced by its definition, until none is left.
pub fn expand(query: &str, macros: &Conf) -> Result<String, String> {
    let call = regex::Regex::new(r"`([A-Za-z0-9_]+)`").unwrap();
    let mut q = query.to_string();
    for _ in 0..16 {
        let name = call.captures(&q).map(|c| c[1].to_string());
        let Some(name) = name else {
            return Ok(q);
        };
        let definition = macros
            .stanzas
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, settings)| settings.iter().find(|(k, _)| k == "definition"))
            .map(|(_, d)| d.clone())
            .ok_or_else(|| format!("macro `{name}` is not defined"))?;
        q = q.replacen(&format!("`{name}`"), &definition, 1);
    }
    Err(format!("macros nest too deep in {query}"))
}

/// The fields a `lookup` command segment reads (left of `OUTPUT`) and sets:
/// its table and columns are no fields.
pub fn lookup_fields(segment: &str) -> (Vec<String>, Vec<String>) {
    let words: Vec<&str> = segment.split_whitespace().skip(2).collect();
    let out = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("OUTPUT") || w.eq_ignore_ascii_case("OUTPUTNEW"))
        .unwrap_or(words.len());
    let field = |(_, f): (String, String)| f;
    let inputs = pairs(&words[..out]).into_iter().map(field).collect();
    let outputs = pairs(words.get(out + 1..).unwrap_or(&[]))
        .into_iter()
        .map(field)
        .collect();
    (inputs, outputs)
}

/// `field=value` or `field!=value`; `*` in the value matches anything.
struct Term {
    field: String,
    negated: bool,
    pattern: String,
}

enum Arg {
    /// `count`: every row.
    Rows,
    Field(String),
    Eval(Compiled),
}

/// `func(arg) [AS name]`.
struct Agg {
    func: String,
    arg: Arg,
    name: String,
}

struct Mstats {
    fillnull: Option<String>,
    aggs: Vec<Agg>,
    terms: Vec<Term>,
    by: Vec<String>,
    span: Option<u64>,
}

enum Cmd {
    Terms(Vec<Term>),
    MakeResults,
    Mstats(Mstats),
    Eval(Vec<(String, Compiled)>),
    Where(Compiled),
    Stats(Vec<Agg>, Vec<String>),
    Timechart {
        span: Option<u64>,
        minspan: u64,
        agg: Agg,
        by: Option<String>,
    },
    Fillnull(String, Vec<String>),
    /// (field, descending)
    Sort(Vec<(String, bool)>),
    Head(usize),
    Table(Vec<String>),
    Rename(Vec<(String, String)>),
    Lookup(Lookup),
}

/// A parsed search.
pub struct Search(Vec<Cmd>);

/// Parses a search whose macros are expanded.
pub fn parse(query: &str) -> Result<Search, String> {
    let mut cmds = Vec::new();
    for (i, segment) in spl::split_top(query, '|').iter().enumerate() {
        let segment = segment.trim();
        if i == 0 {
            // Empty: the search starts with a generating command.
            if !segment.is_empty() {
                cmds.push(Cmd::Terms(terms(&words(segment))?));
            }
            continue;
        }
        let (name, rest) = segment
            .split_once(char::is_whitespace)
            .unwrap_or((segment, ""));
        cmds.push(command(name, rest.trim()).map_err(|e| format!("{name}: {e}"))?);
    }
    if !matches!(
        cmds.first(),
        Some(Cmd::Terms(_) | Cmd::MakeResults | Cmd::Mstats(_))
    ) {
        return Err(format!("no events or generating command first: {query}"));
    }
    let generating = |c: &Cmd| matches!(c, Cmd::MakeResults | Cmd::Mstats(_));
    if cmds.iter().skip(1).any(generating) {
        return Err(format!("a generating command after the first: {query}"));
    }
    Ok(Search(cmds))
}

fn command(name: &str, rest: &str) -> Result<Cmd, String> {
    let w = words(rest);
    let by = |w: &[String]| {
        let at = w
            .iter()
            .position(|x| x.eq_ignore_ascii_case("by"))
            .unwrap_or(w.len());
        (at, fields(w.get(at + 1..).unwrap_or(&[])))
    };
    Ok(match name {
        "search" => Cmd::Terms(terms(&w)?),
        "makeresults" if w.is_empty() => Cmd::MakeResults,
        "mstats" => Cmd::Mstats(mstats(&w)?),
        "eval" => {
            let mut assignments = Vec::new();
            for a in spl::split_top(rest, ',') {
                let (field, e) = a
                    .split_once('=')
                    .ok_or_else(|| format!("not field=expression: {a}"))?;
                assignments.push((field.trim().to_string(), spl::parse(e)?));
            }
            Cmd::Eval(assignments)
        }
        "where" => Cmd::Where(spl::parse(rest)?),
        "stats" => {
            let (at, fields) = by(&w[..]);
            Cmd::Stats(aggs(&w[..at])?, fields)
        }
        "timechart" => {
            let (mut span, mut minspan, mut i) = (None, 0, 0);
            while let Some((k, v)) = w.get(i).and_then(|x| option(x.as_str())) {
                match k {
                    "span" => span = Some(seconds(v)?),
                    "minspan" => minspan = seconds(v)?,
                    _ => return Err(format!("option {k} is not known to this evaluator")),
                }
                i += 1;
            }
            let (at, mut split) = by(&w[..]);
            let mut aggs = aggs(&w[i..at])?;
            if aggs.len() != 1 || split.len() > 1 {
                return Err("one aggregation and at most one split-by field only".into());
            }
            Cmd::Timechart {
                span,
                minspan,
                agg: aggs.remove(0),
                by: split.pop(),
            }
        }
        "fillnull" => {
            let (value, rest) = match w.first().and_then(|x| option(x.as_str())) {
                Some(("value", v)) => (unquote(v), &w[1..]),
                _ => ("0".to_string(), &w[..]),
            };
            let fields = fields(rest);
            if fields.is_empty() {
                return Err("fillnull of every field is not known to this evaluator".into());
            }
            Cmd::Fillnull(value, fields)
        }
        "sort" => {
            let (mut keys, mut descending) = (Vec::new(), false);
            for x in fields(&w) {
                match x.as_str() {
                    "-" => descending = true,
                    "+" => descending = false,
                    x if x.starts_with(|c: char| c.is_ascii_digit()) => {
                        return Err(format!("a sort limit ({x}) is not known to this evaluator"))
                    }
                    x => {
                        let (d, f) = match x.strip_prefix('-') {
                            Some(f) => (true, f),
                            None => (descending, x.strip_prefix('+').unwrap_or(x)),
                        };
                        keys.push((f.to_string(), d));
                        descending = false;
                    }
                }
            }
            Cmd::Sort(keys)
        }
        "head" if rest.is_empty() => Cmd::Head(10),
        "head" => Cmd::Head(rest.parse().map_err(|_| format!("not a count: {rest}"))?),
        "table" => Cmd::Table(fields(&w)),
        "rename" => {
            let f = fields(&w);
            if f.len() % 3 != 0 || f.chunks(3).any(|c| !c[1].eq_ignore_ascii_case("AS")) {
                return Err(format!("not <field> AS <field>, …: {rest}"));
            }
            Cmd::Rename(f.chunks(3).map(|c| (c[0].clone(), c[2].clone())).collect())
        }
        "lookup" => {
            let table = w.first().ok_or("no lookup table")?;
            Cmd::Lookup(read_lookup(&conf("transforms.conf"), table, rest))
        }
        _ => return Err("a command this evaluator does not know".into()),
    })
}

fn mstats(w: &[String]) -> Result<Mstats, String> {
    let (mut fillnull, mut i) = (None, 0);
    while let Some((k, v)) = w.get(i).and_then(|x| option(x.as_str())) {
        match k {
            "fillnull_value" => fillnull = Some(unquote(v)),
            _ => return Err(format!("option {k} is not known to this evaluator")),
        }
        i += 1;
    }
    let at = w
        .iter()
        .position(|x| x.eq_ignore_ascii_case("WHERE"))
        .ok_or("no WHERE clause")?;
    let (mut span, mut clause) = (None, Vec::new());
    for x in &w[at + 1..] {
        match option(x) {
            Some(("span", v)) => span = Some(seconds(v)?),
            _ => clause.push(x.clone()),
        }
    }
    let by = clause
        .iter()
        .position(|x| x.eq_ignore_ascii_case("BY") || x.eq_ignore_ascii_case("GROUPBY"))
        .unwrap_or(clause.len());
    Ok(Mstats {
        fillnull,
        aggs: aggs(&w[i..at])?,
        terms: terms(&clause[..by])?,
        by: fields(clause.get(by + 1..).unwrap_or(&[])),
        span,
    })
}

/// `s` split at whitespace outside quotes and parentheses.
fn words(s: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut quoted) = (0i32, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                cur.extend(chars.next());
                continue;
            }
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c.is_whitespace() && !quoted && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Field names, commas between them or not.
fn fields(words: &[String]) -> Vec<String> {
    words
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

/// `key=value` whose key is a plain name.
fn option(w: &str) -> Option<(&str, &str)> {
    let (k, v) = w.split_once('=')?;
    let plain = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some((k, v))
}

/// A value as written, quotes taken off.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

/// A span such as `1m`, in seconds.
fn seconds(v: &str) -> Result<u64, String> {
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..digits].parse().map_err(|_| format!("span {v}"))?;
    let unit = match &v[digits..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        u => return Err(format!("span unit {u} is not known to this evaluator")),
    };
    Ok(n * unit)
}

fn terms(words: &[String]) -> Result<Vec<Term>, String> {
    let mut out = Vec::new();
    for w in words.iter().filter(|w| *w != "AND") {
        let (field, negated, value) = match w.split_once("!=") {
            Some((f, v)) => (f, true, v),
            None => match option(w) {
                Some((f, v)) => (f, false, v),
                None => return Err(format!("{w}: only field=value and field!=value terms")),
            },
        };
        out.push(Term {
            field: field.to_string(),
            negated,
            pattern: unquote(value),
        });
    }
    Ok(out)
}

fn aggs(words: &[String]) -> Result<Vec<Agg>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let (func, inner) = match w.split_once('(') {
            Some((f, r)) => (f, r.strip_suffix(')').ok_or("no closing )")?),
            None => (w.as_str(), ""),
        };
        let arg = match inner
            .strip_prefix("eval(")
            .and_then(|e| e.strip_suffix(')'))
        {
            Some(e) => Arg::Eval(spl::parse(e)?),
            None if inner.is_empty() => Arg::Rows,
            None => Arg::Field(inner.to_string()),
        };
        let mut name = w.clone();
        i += 1;
        if words.get(i).is_some_and(|x| x.eq_ignore_ascii_case("AS")) {
            name = words.get(i + 1).ok_or("AS without a name")?.clone();
            i += 2;
        }
        out.push(Agg {
            func: func.to_string(),
            arg,
            name,
        });
    }
    if out.is_empty() {
        return Err("no aggregation".into());
    }
    Ok(out)
}

impl Term {
    /// Whether `row` has the field and a value that matches (or, negated,
    /// one that does not).
    fn matches(&self, row: &Row) -> bool {
        let values = row.get(&self.field).map(V::values).unwrap_or_default();
        !values.is_empty() && values.iter().any(|v| glob(&self.pattern, v)) != self.negated
    }
}

/// `value` against `pattern`, whose `*` matches any text, whatever the case.
fn glob(pattern: &str, value: &str) -> bool {
    let (pattern, value) = (pattern.to_lowercase(), value.to_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return value == first;
    }
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

impl Agg {
    fn values(&self, rows: &[&Row]) -> Result<Vec<V>, String> {
        rows.iter()
            .map(|r| match &self.arg {
                Arg::Rows => Ok(V::Num(1.0)),
                Arg::Field(f) => Ok(r.get(f).cloned().unwrap_or(V::Null)),
                Arg::Eval(e) => e.eval(r),
            })
            .collect()
    }
}

/// `func` over `values`, nulls left out; `span` (seconds) for `per_second`.
fn aggregate(func: &str, values: Vec<V>, span: u64) -> Result<V, String> {
    let present: Vec<V> = values.into_iter().filter(|v| *v != V::Null).collect();
    let nums: Vec<f64> = present.iter().filter_map(V::num).collect();
    let distinct = || {
        let mut all: Vec<String> = present.iter().flat_map(V::values).collect();
        all.sort();
        all.dedup();
        all
    };
    let sum: f64 = nums.iter().sum();
    Ok(match func {
        "count" => V::Num(present.len() as f64),
        "dc" => V::Num(distinct().len() as f64),
        "values" => match distinct() {
            all if all.is_empty() => V::Null,
            mut all if all.len() == 1 => V::Str(all.remove(0)),
            all => V::Multi(all),
        },
        _ if nums.is_empty() => V::Null,
        "sum" => V::Num(sum),
        "per_second" => V::Num(sum / span as f64),
        "avg" => V::Num(sum / nums.len() as f64),
        "min" => V::Num(nums.iter().copied().fold(f64::INFINITY, f64::min)),
        "max" => V::Num(nums.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        other => return Err(format!("{other}() is not known to this evaluator")),
    })
}

fn set(row: &mut Row, field: &str, v: V) {
    match v {
        V::Null => row.remove(field),
        v => row.insert(field.to_string(), v),
    };
}

fn time_of(row: &Row) -> Result<u64, String> {
    match row.get("_time").and_then(V::num) {
        Some(t) if t >= 0.0 => Ok(t.floor() as u64),
        _ => Err(format!("a row without _time: {row:?}")),
    }
}

/// `rows` by their values of `by`, in the order of those values; a row
/// without one is left out unless `fill` stands in for it.
fn groups<'r>(
    rows: impl Iterator<Item = &'r Row>,
    by: &[String],
    fill: Option<&str>,
) -> BTreeMap<Vec<String>, Vec<&'r Row>> {
    let mut out: BTreeMap<Vec<String>, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        let key: Option<Vec<String>> = by
            .iter()
            .map(|f| {
                r.get(f)
                    .and_then(V::text)
                    .or_else(|| fill.map(String::from))
            })
            .collect();
        if let Some(key) = key {
            out.entry(key).or_default().push(r);
        }
    }
    out
}

/// A row holding a group's values of `by`.
fn group_row(by: &[String], key: Vec<String>) -> Row {
    by.iter()
        .cloned()
        .zip(key.into_iter().map(V::Str))
        .collect()
}

fn metric_name(point: &Row) -> Option<String> {
    point.get("metric_name").and_then(V::text)
}

impl Mstats {
    fn run(&self, points: &[Row]) -> Result<Vec<Row>, String> {
        let mut metrics = Vec::new();
        for a in &self.aggs {
            match &a.arg {
                Arg::Field(m) => metrics.push(m.as_str()),
                _ => return Err(format!("{}: mstats takes a metric name", a.name)),
            }
        }
        let chosen = points.iter().filter(|p| {
            metric_name(p).is_some_and(|m| metrics.contains(&m.as_str()))
                && self.terms.iter().all(|t| t.matches(p))
        });
        let mut by_time: BTreeMap<u64, Vec<&Row>> = BTreeMap::new();
        for p in chosen {
            let t = match self.span {
                Some(span) => time_of(p)? / span * span,
                None => 0,
            };
            by_time.entry(t).or_default().push(p);
        }
        let mut out = Vec::new();
        for (t, in_bucket) in by_time {
            for (key, members) in groups(in_bucket.into_iter(), &self.by, self.fillnull.as_deref())
            {
                let mut row = group_row(&self.by, key);
                if self.span.is_some() {
                    row.insert("_time".into(), V::Num(t as f64));
                }
                for (a, metric) in self.aggs.iter().zip(&metrics) {
                    let values = members
                        .iter()
                        .filter(|p| metric_name(p).as_deref() == Some(*metric))
                        .map(|p| p.get("_value").cloned().unwrap_or(V::Null))
                        .collect();
                    set(&mut row, &a.name, aggregate(&a.func, values, 1)?);
                }
                out.push(row);
            }
        }
        Ok(out)
    }
}

fn timechart(rows: &[Row], agg: &Agg, by: Option<&str>, span: u64) -> Result<Vec<Row>, String> {
    let mut cells: BTreeMap<u64, BTreeMap<String, Vec<&Row>>> = BTreeMap::new();
    for r in rows {
        let series = match by {
            Some(f) => r.get(f).and_then(V::text).unwrap_or_else(|| "NULL".into()),
            None => agg.name.clone(),
        };
        let bucket = time_of(r)? / span * span;
        cells
            .entry(bucket)
            .or_default()
            .entry(series)
            .or_default()
            .push(r);
    }
    let (Some(&first), Some(&last)) = (cells.keys().next(), cells.keys().next_back()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    // Every bucket from the first to the last, as Splunk draws empty ones too.
    for t in (first..=last).step_by(span as usize) {
        let mut row = Row::from([("_time".to_string(), V::Num(t as f64))]);
        for (series, members) in cells.get(&t).into_iter().flatten() {
            set(
                &mut row,
                series,
                aggregate(&agg.func, agg.values(members)?, span)?,
            );
        }
        out.push(row);
    }
    Ok(out)
}

/// Numbers as numbers, else text; a missing value first.
fn compare(a: Option<&V>, b: Option<&V>) -> Ordering {
    match (a.and_then(V::num), b.and_then(V::num)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.and_then(V::text).cmp(&b.and_then(V::text)),
    }
}

/// A row as sorted (field, text) pairs.
fn canonical(row: &Row) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = row
        .iter()
        .map(|(k, v)| (k.clone(), v.text().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs
}

impl Search {
    /// The search's results over `data`.
    pub fn run(&self, data: &Data<'_>) -> Result<Vec<Row>, String> {
        let mut rows: Vec<Row> = Vec::new();
        for (i, cmd) in self.0.iter().enumerate() {
            rows = match cmd {
                Cmd::Terms(t) => {
                    let source = if i == 0 { data.events } else { &rows[..] };
                    source
                        .iter()
                        .filter(|r| t.iter().all(|t| t.matches(r)))
                        .cloned()
                        .collect()
                }
                Cmd::MakeResults => vec![Row::from([("_time".to_string(), V::Num(0.0))])],
                Cmd::Mstats(m) => m.run(data.points)?,
                Cmd::Eval(assignments) => {
                    for r in &mut rows {
                        for (field, e) in assignments {
                            let v = e.eval(r)?;
                            if matches!(v, V::Bool(_)) {
                                return Err(format!("eval {field}= yields a condition"));
                            }
                            set(r, field, v);
                        }
                    }
                    rows
                }
                Cmd::Where(e) => {
                    let mut kept = Vec::new();
                    for r in rows {
                        if e.eval(&r)?.truth()? {
                            kept.push(r);
                        }
                    }
                    kept
                }
                Cmd::Stats(aggs, by) => {
                    let mut out = Vec::new();
                    for (key, members) in groups(rows.iter(), by, None) {
                        let mut row = group_row(by, key);
                        for a in aggs {
                            set(
                                &mut row,
                                &a.name,
                                aggregate(&a.func, a.values(&members)?, 1)?,
                            );
                        }
                        out.push(row);
                    }
                    out
                }
                Cmd::Timechart {
                    span,
                    minspan,
                    agg,
                    by,
                } => {
                    let span = span.unwrap_or(data.default_span.max(*minspan));
                    timechart(&rows, agg, by.as_deref(), span)?
                }
                Cmd::Fillnull(value, fields) => {
                    for r in &mut rows {
                        for f in fields {
                            if r.get(f).is_none_or(|v| *v == V::Null) {
                                r.insert(f.clone(), V::Str(value.clone()));
                            }
                        }
                    }
                    rows
                }
                Cmd::Sort(keys) => {
                    // Ties in an order of the rows' own values, not of how
                    // they came: Splunk leaves it open, and twins built from
                    // different data must compare.
                    rows.sort_by(|a, b| {
                        keys.iter()
                            .map(|(f, descending)| {
                                let o = compare(a.get(f), b.get(f));
                                if *descending {
                                    o.reverse()
                                } else {
                                    o
                                }
                            })
                            .find(|o| o.is_ne())
                            .unwrap_or_else(|| canonical(a).cmp(&canonical(b)))
                    });
                    rows
                }
                Cmd::Head(n) => rows.into_iter().take(*n).collect(),
                Cmd::Table(fields) => rows
                    .into_iter()
                    .map(|mut r| {
                        r.retain(|k, _| fields.contains(k));
                        r
                    })
                    .collect(),
                Cmd::Rename(renames) => {
                    for r in &mut rows {
                        for (from, to) in renames {
                            if let Some(v) = r.remove(from) {
                                r.insert(to.clone(), v);
                            }
                        }
                    }
                    rows
                }
                Cmd::Lookup(l) => {
                    for r in &mut rows {
                        l.apply(r);
                    }
                    rows
                }
            };
        }
        Ok(rows)
    }
}
