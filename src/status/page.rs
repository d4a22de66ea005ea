//! `GET /`: the status page, rendered here from a [`Status`] — HTML with
//! inline CSS and SVG, no script and no external asset, refreshed by the
//! browser every few seconds. Every value a test or a scraper may want
//! carries its raw number in `data-value` beside the text people read.

use super::model::{OutputView, Status};
use std::fmt::Write;

/// Seconds between the browser's reloads of the page.
pub const REFRESH_S: u32 = 5;

/// Text safe inside HTML elements and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 1234567 → "1.23M".
fn count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn bytes(v: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Unix seconds → "2026-12-02 18:00:00 UTC".
fn utc(t: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t as i64)
        .ok()
        .and_then(|d| {
            let f = time::format_description::parse_borrowed::<2>(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC",
            )
            .ok()?;
            d.format(&f).ok()
        })
        .unwrap_or_else(|| format!("{t:.0}"))
}

/// A value with its raw number for machines.
fn value(key: &str, raw: impl std::fmt::Display, text: &str) -> String {
    format!(
        "<span data-key=\"{}\" data-value=\"{}\">{}</span>",
        esc(key),
        esc(&raw.to_string()),
        esc(text)
    )
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v` (at least 1).
fn nice_max(v: f64) -> f64 {
    // NaN too.
    if v.is_nan() || v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// An SVG line chart of `(unix time, value)` over the `span` seconds up to
/// `now`; drawn with its axes even when there are no points yet.
fn chart(
    key: &str,
    title: &str,
    points: &[(f64, f64)],
    now: f64,
    span: f64,
    fmt: fn(f64) -> String,
) -> String {
    const W: f64 = 360.0;
    const H: f64 = 110.0;
    const LEFT: f64 = 44.0;
    const TOP: f64 = 8.0;
    const BOTTOM: f64 = 18.0;
    let plot_w = W - LEFT - 6.0;
    let plot_h = H - TOP - BOTTOM;
    let max = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let x = |t: f64| LEFT + plot_w * (1.0 - ((now - t) / span).clamp(0.0, 1.0));
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure class=\"chart\"><figcaption>{}</figcaption><svg data-chart=\"{}\" data-points=\"{}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(key),
        points.len(),
        esc(title)
    );
    for (frac, label) in [(0.0, fmt(0.0)), (0.5, fmt(max / 2.0)), (1.0, fmt(max))] {
        let gy = TOP + plot_h * (1.0 - frac);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" class=\"grid\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"ylabel\">{}</text>",
            W - 6.0,
            LEFT - 4.0,
            gy + 3.5,
            esc(&label)
        );
    }
    for (frac, label) in [(0.0, "−60 min"), (0.5, "−30 min"), (1.0, "now")] {
        let gx = LEFT + plot_w * frac;
        let anchor = if frac == 1.0 {
            "end"
        } else if frac == 0.0 {
            "start"
        } else {
            "middle"
        };
        let _ = write!(
            svg,
            "<text x=\"{gx:.1}\" y=\"{:.1}\" class=\"xlabel\" text-anchor=\"{anchor}\">{label}</text>",
            H - 4.0
        );
    }
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"empty\" text-anchor=\"middle\">no points yet (one every 10 s)</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    } else {
        let coords: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"line\" points=\"{}\"/>",
            coords.join(" ")
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn output_state(o: &OutputView) -> (&'static str, &'static str) {
    let s = &o.status;
    if s.paused {
        ("paused: token refused", "bad")
    } else if s.indexers_up == 0 && s.indexers_total > 0 {
        ("down", "bad")
    } else if s.indexers_up < s.indexers_total {
        ("degraded", "warn")
    } else {
        ("up", "ok")
    }
}

fn output_section(out: &mut String, o: &OutputView) {
    let s = &o.status;
    let (state, class) = output_state(o);
    let name = esc(&s.output);
    let _ = write!(
        out,
        "<section class=\"output\" data-output=\"{name}\"><h3>{name} <small>({})</small> <span class=\"badge {class}\" data-key=\"state\">{state}</span></h3><table class=\"kv\">",
        esc(s.kind)
    );
    let rows = [
        (
            "Delivered",
            value(
                "events_out_per_s",
                o.events_out_per_s,
                &format!("{} events/s", count(o.events_out_per_s)),
            ),
        ),
        (
            "Delivered since start",
            value("events_out", s.events_out, &count(s.events_out as f64)),
        ),
        (
            "Sent again",
            value("resent", s.resent, &count(s.resent as f64)),
        ),
        (
            "Dead letters held",
            value(
                "dead_letters",
                s.dead_letters,
                &count(s.dead_letters as f64),
            ),
        ),
        (
            "Dead-lettered since start",
            value(
                "dead_lettered",
                s.dead_lettered,
                &count(s.dead_lettered as f64),
            ),
        ),
        (
            "Corrupt records",
            value(
                "corrupt_records",
                s.corrupt_records,
                &count(s.corrupt_records as f64),
            ),
        ),
        (
            "Oldest undelivered",
            value(
                "oldest_undelivered_age_s",
                s.oldest_undelivered_age_s,
                &duration(s.oldest_undelivered_age_s),
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    out.push_str("</table><table class=\"list\"><thead><tr><th>Destination</th><th>State</th><th>Pending acks</th></tr></thead><tbody>");
    for i in &s.indexers {
        let (state, class) = if i.up { ("up", "ok") } else { ("down", "bad") };
        let _ = write!(
            out,
            "<tr data-indexer=\"{url}\"><td>{url}</td><td><span class=\"badge {class}\" data-key=\"up\" data-value=\"{}\">{state}</span></td><td>{}</td></tr>",
            i.up,
            value("pending_acks", i.pending_acks, &count(i.pending_acks as f64)),
            url = esc(&i.url)
        );
    }
    out.push_str("</tbody></table>");
    if s.last_errors.is_empty() {
        out.push_str("<p class=\"none\" data-key=\"last_errors\" data-value=\"0\">No errors since start.</p>");
    } else {
        let _ = write!(
            out,
            "<details open><summary>Last errors (<span data-key=\"last_errors\" data-value=\"{n}\">{n}</span>)</summary><ol class=\"errors\">",
            n = s.last_errors.len()
        );
        for e in &s.last_errors {
            let _ = write!(
                out,
                "<li><time>{}</time> {}{}</li>",
                esc(&utc(e.time)),
                e.indexer
                    .as_deref()
                    .map(|i| format!("<code>{}</code> ", esc(i)))
                    .unwrap_or_default(),
                esc(&e.error)
            );
        }
        out.push_str("</ol></details>");
    }
    out.push_str("</section>");
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}\
header h1{font-size:18px;margin:0}main{padding:12px 20px;max-width:1200px}\
h2{font-size:15px;margin:18px 0 8px;border-bottom:1px solid #d5d9e0}h3{font-size:14px;margin:6px 0}\
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:8px 12px;min-width:140px}\
.tile .label{font-size:12px;color:#5b6472}.tile .big{font-size:20px;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:10px}.chart{background:#fff;border:1px solid #d5d9e0;border-radius:6px;margin:0;padding:6px}\
figcaption{font-size:12px;color:#5b6472}.grid{stroke:#e3e6eb;stroke-width:1}.line{fill:none;stroke:#f38020;stroke-width:1.6}\
.ylabel{font-size:9px;fill:#5b6472;text-anchor:end}.xlabel{font-size:9px;fill:#5b6472}.empty{font-size:11px;fill:#8a93a3}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #d5d9e0;padding:3px 8px;text-align:left;font-weight:normal}\
thead th,.kv th{background:#eef0f3}.output{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:8px 12px;margin:8px 0}\
.output table{margin:6px 0}.badge{border-radius:4px;padding:1px 6px;font-size:12px}.ok{background:#d9f2e3;color:#14532d}\
.warn{background:#fff1c2;color:#713f12}.bad{background:#fde2e1;color:#7f1d1d}.errors{margin:4px 0;padding-left:20px;font-size:12px}\
code{font-size:12px}.none{color:#5b6472;font-size:12px}";

/// The whole page.
pub fn render(s: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let (state, class) = if s.draining {
        ("draining", "warn")
    } else if !s.queue_writable {
        ("queue not writable", "bad")
    } else {
        ("receiving", "ok")
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_S}\"><meta name=\"viewport\" content=\"width=device-width\"><title>Sluice {node}</title><style>{STYLE}</style></head><body>\
<header><h1>Sluice <span data-key=\"node\">{node}</span></h1><span>version {ver}</span><span>up {up}</span><span class=\"badge {class}\" data-key=\"state\">{state}</span><span>{now}</span></header><main>",
        node = esc(&s.node),
        ver = esc(s.version),
        up = duration(s.uptime_s),
        now = esc(&utc(s.time)),
    );

    out.push_str("<h2>Now</h2><div class=\"tiles\">");
    let days = s.tls_cert_expiry.map(|t| (t as f64 - s.time) / 86_400.0);
    let mut tiles = vec![
        (
            "Ingest",
            value(
                "events_in_per_s",
                s.events_in_per_s,
                &format!("{} events/s", count(s.events_in_per_s)),
            ),
        ),
        (
            "Accepted since start",
            value("events_in", s.events_in, &count(s.events_in as f64)),
        ),
        (
            "Queued events",
            value(
                "queue_events",
                s.queue_events,
                &count(s.queue_events as f64),
            ),
        ),
        (
            "Queued records",
            value(
                "queue_records",
                s.queue_records,
                &count(s.queue_records as f64),
            ),
        ),
        (
            "Queue size",
            value("queue_bytes", s.queue_bytes, &bytes(s.queue_bytes)),
        ),
        (
            "Oldest queued",
            value(
                "queue_oldest_age_s",
                s.queue_oldest_age_s,
                &duration(s.queue_oldest_age_s),
            ),
        ),
        (
            "Corrupt records",
            value(
                "corrupt_records",
                s.corrupt_records,
                &count(s.corrupt_records as f64),
            ),
        ),
        (
            "Last config load",
            value(
                "config_last_reload_successful",
                s.config_last_reload_successful,
                if s.config_last_reload_successful {
                    "ok"
                } else {
                    "refused (see log)"
                },
            ),
        ),
    ];
    if let Some(free) = s.queue_free_bytes {
        tiles.push(("Free disk", value("queue_free_bytes", free, &bytes(free))));
    }
    if let (Some(t), Some(d)) = (s.tls_cert_expiry, days) {
        tiles.push((
            "Certificate expires",
            value("tls_cert_expiry", t, &format!("in {d:.0} days")),
        ));
    }
    for (label, v) in tiles {
        let _ = write!(out, "<div class=\"tile\"><div class=\"label\">{label}</div><div class=\"big\">{v}</div></div>");
    }
    out.push_str("</div>");

    out.push_str("<h2>Last hour</h2><div class=\"charts\">");
    let p = &s.history.points;
    let series = |f: fn(&super::history::Point) -> f64| -> Vec<(f64, f64)> {
        p.iter().map(|x| (x.time, f(x))).collect()
    };
    let span = s.history.span_s;
    out.push_str(&chart(
        "events_in_per_s",
        "Ingest (events/s)",
        &series(|x| x.events_in_per_s),
        s.time,
        span,
        count,
    ));
    out.push_str(&chart(
        "queue_events",
        "Queued events",
        &series(|x| x.queue_events as f64),
        s.time,
        span,
        count,
    ));
    out.push_str(&chart(
        "queue_oldest_age_s",
        "Oldest queued",
        &series(|x| x.queue_oldest_age_s),
        s.time,
        span,
        duration,
    ));
    out.push_str("</div>");

    out.push_str("<h2>Outputs</h2>");
    if s.outputs.is_empty() {
        out.push_str("<p class=\"none\">No output has reported yet.</p>");
    }
    for o in &s.outputs {
        output_section(&mut out, o);
    }

    out.push_str("<h2>Listeners</h2><table class=\"list\"><thead><tr><th>Listener</th><th>Address</th><th>TLS</th><th>Callers</th></tr></thead><tbody>");
    for l in &s.listeners {
        let _ = write!(
            out,
            "<tr data-listener=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(l.name),
            esc(l.name),
            esc(&l.address),
            if l.tls { "yes" } else { "no" },
            esc(&l.auth)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Tokens</h2><table class=\"list\"><thead><tr><th>Name</th><th>Acks</th><th>State</th></tr></thead><tbody>");
    for t in &s.tokens {
        let _ = write!(
            out,
            "<tr data-token=\"{name}\"><td>{name}</td><td>{}</td><td>{}</td></tr>",
            t.ack,
            if t.disabled {
                "<span class=\"badge bad\">disabled</span>"
            } else {
                "<span class=\"badge ok\">enabled</span>"
            },
            name = esc(&t.name)
        );
    }
    let _ = write!(
        out,
        "</tbody></table><p class=\"none\">Refreshes every {REFRESH_S} s. The same as JSON: <a href=\"/api/status\">/api/status</a>; metrics: <a href=\"/metrics\">/metrics</a>.</p></main></body></html>"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::history::Point;
    use crate::status::model::{HistoryView, ListenerView, TokenView};

    fn status(points: Vec<Point>) -> Status {
        Status {
            version: "0.0.0",
            node: "n<1>".into(),
            time: 3600.0,
            uptime_s: 75.0,
            draining: false,
            listeners: vec![ListenerView {
                name: "hec",
                address: "127.0.0.1:8088".into(),
                tls: true,
                auth: "token".into(),
            }],
            tokens: vec![TokenView {
                name: "<script>alert(1)</script>".into(),
                ack: "none",
                disabled: false,
            }],
            events_in: 1234,
            events_in_per_s: 12.5,
            queue_records: 2,
            queue_events: 20,
            queue_bytes: 2048,
            queue_oldest_age_s: 61.0,
            queue_writable: true,
            queue_free_bytes: Some(1 << 30),
            corrupt_records: 0,
            tls_cert_expiry: Some(3600 + 86_400 * 30),
            config_last_reload_successful: true,
            config_last_reload_success_timestamp_seconds: 0.0,
            client_ack_channels: 1,
            client_acks_pending: 4,
            outputs: vec![],
            history: HistoryView {
                step_s: 10.0,
                span_s: 3600.0,
                points,
            },
        }
    }

    #[test]
    fn names_are_escaped_and_values_carry_their_raw_numbers() {
        let html = render(&status(vec![]));
        assert!(
            !html.contains("<script>"),
            "a token name is text, not markup"
        );
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("n&lt;1&gt;"));
        assert!(html.contains("data-key=\"queue_events\" data-value=\"20\">20<"));
        assert!(html.contains("data-key=\"queue_bytes\" data-value=\"2048\">2.0 KiB<"));
        assert!(html.contains("in 30 days"));
    }

    #[test]
    fn charts_are_drawn_before_there_is_history() {
        let html = render(&status(vec![]));
        assert_eq!(html.matches("<svg data-chart=").count(), 3);
        assert_eq!(html.matches("data-points=\"0\"").count(), 3);
        assert!(html.contains("no points yet"));
        assert!(!html.contains("<polyline"));
    }

    #[test]
    fn points_are_placed_by_age() {
        let p = |time, v| Point {
            time,
            events_in_per_s: v,
            queue_events: 0,
            queue_oldest_age_s: 0.0,
        };
        let html = render(&status(vec![
            p(0.0, 0.0),
            p(1800.0, 40.0),
            p(3600.0, 100.0),
        ]));
        // x from 44 (an hour ago) to 354 (now); y from 92 (0) to 8 (the nice max, 100).
        assert!(
            html.contains("points=\"44.0,92.0 199.0,58.4 354.0,8.0\""),
            "{html}"
        );
    }

    #[test]
    fn nice_maxima_and_units() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(101.0), 200.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(count(1_234_567.0), "1.23M");
        assert_eq!(duration(3725.0), "1h 2m");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
    }
}
