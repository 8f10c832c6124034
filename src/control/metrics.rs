//! `--metrics ADDR`: Prometheus metrics at `http://ADDR/metrics`, every name prefixed
//! `vccfs_`, read from a [`Snapshot`] at each scrape (plus the read latency histogram).
//! The names are documented in the README ("Operating").

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Sources;

#[derive(Debug)]
struct Snapshots(Arc<Sources>);

type Labels<'a> = Vec<(&'static str, String)>;

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter_f(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn one(v: u64) -> Vec<(Labels<'static>, u64)> {
    vec![(Vec::new(), v)]
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for Snapshots {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let requests: Vec<_> = s
            .requests
            .iter()
            .map(|r| {
                let status = if r.status == 0 {
                    "none".to_string()
                } else {
                    r.status.to_string()
                };
                (
                    vec![("purpose", r.purpose.clone()), ("status", status)],
                    r.count,
                )
            })
            .collect();
        counter(
            &mut enc,
            "vccfs_api_requests",
            "API requests by purpose and HTTP status",
            &requests,
        )?;
        counter(
            &mut enc,
            "vccfs_api_429",
            "API answers 429 (rate limited)",
            &one(s.status_429),
        )?;
        counter(
            &mut enc,
            "vccfs_api_refused_redirects",
            "content redirects refused (to plain http)",
            &one(s.refused_redirects),
        )?;
        counter(
            &mut enc,
            "vccfs_api_retries",
            "API requests sent again after a failure",
            &one(s.retries),
        )?;
        counter(
            &mut enc,
            "vccfs_fetched_bytes",
            "content bytes received from the API",
            &one(s.bytes_fetched),
        )?;
        counter_f(
            &mut enc,
            "vccfs_budget_wait_seconds",
            "time requests waited for the request budget",
            s.budget_wait_seconds,
        )?;
        gauge(
            &mut enc,
            "vccfs_budget_requests_last_minute",
            "requests sent in the last 60 s",
            &[(Vec::new(), signed(s.requests_last_minute))],
        )?;
        if let Some(left) = s.slots_left {
            gauge(
                &mut enc,
                "vccfs_budget_slots_left",
                "requests the per-minute budget still allows now",
                &[(Vec::new(), signed(left))],
            )?;
        }
        let tier = |t: &super::TierUse| vec![("tier", t.tier.clone())];
        let hits: Vec<_> = s.tiers.iter().map(|t| (tier(t), t.hits)).collect();
        let misses: Vec<_> = s.tiers.iter().map(|t| (tier(t), t.misses)).collect();
        let evictions: Vec<_> = s.tiers.iter().map(|t| (tier(t), t.evictions)).collect();
        let rejected: Vec<_> = s.tiers.iter().map(|t| (tier(t), t.rejected)).collect();
        let bytes: Vec<_> = s.tiers.iter().map(|t| (tier(t), signed(t.bytes))).collect();
        let degraded: Vec<_> = s
            .tiers
            .iter()
            .map(|t| (tier(t), i64::from(!t.healthy)))
            .collect();
        counter(
            &mut enc,
            "vccfs_cache_hits",
            "blocks found in a cache tier",
            &hits,
        )?;
        counter(
            &mut enc,
            "vccfs_cache_misses",
            "blocks a cache tier did not have",
            &misses,
        )?;
        counter(
            &mut enc,
            "vccfs_cache_evictions",
            "blocks evicted from a cache tier",
            &evictions,
        )?;
        counter(
            &mut enc,
            "vccfs_cache_rejected",
            "stored blocks refused as damaged or foreign",
            &rejected,
        )?;
        gauge(
            &mut enc,
            "vccfs_cache_bytes",
            "bytes held by a cache tier",
            &bytes,
        )?;
        gauge(
            &mut enc,
            "vccfs_tier_degraded",
            "1 while a tier is failing (reads fall through)",
            &degraded,
        )?;
        let errors: Vec<_> = s
            .reader_errors
            .iter()
            .map(|(e, n)| (vec![("errno", e.clone())], *n))
            .collect();
        counter(
            &mut enc,
            "vccfs_reader_errors",
            "errors returned to readers, by errno",
            &errors,
        )?;
        gauge(
            &mut enc,
            "vccfs_access_revoked",
            "1 while the API refuses this client (nothing of the tenant is served)",
            &[(Vec::new(), i64::from(s.access == "revoked"))],
        )?;
        gauge(
            &mut enc,
            "vccfs_interactions_listed",
            "interactions in the listing",
            &[(Vec::new(), signed(s.interactions_listed))],
        )?;
        gauge(
            &mut enc,
            "vccfs_days_listed",
            "days of the window listed (from the API or the saved catalog)",
            &[(Vec::new(), signed(s.days_listed))],
        )?;
        gauge(
            &mut enc,
            "vccfs_days_pending",
            "days shown from the saved catalog, not yet re-listed",
            &[(Vec::new(), signed(s.days_pending))],
        )?;
        gauge(
            &mut enc,
            "vccfs_days_in_window",
            "days with a part in the window",
            &[(Vec::new(), signed(s.days_in_window))],
        )?;
        gauge(
            &mut enc,
            "vccfs_days_unlisted",
            "days of the window not listed yet",
            &[(Vec::new(), signed(s.days_unlisted))],
        )?;
        gauge(
            &mut enc,
            "vccfs_catalog_days_in_memory",
            "listed days whose entries are in memory (--catalog-memory)",
            &[(Vec::new(), signed(s.catalog_days_in_memory))],
        )?;
        gauge(
            &mut enc,
            "vccfs_catalog_days_on_disk_only",
            "listed days that left memory (on the saved catalog only)",
            &[(Vec::new(), signed(s.catalog_days_on_disk_only))],
        )?;
        gauge(
            &mut enc,
            "vccfs_catalog_memory_bytes",
            "estimated bytes of the catalog's days in memory",
            &[(Vec::new(), signed(s.catalog_memory_bytes))],
        )?;
        gauge(
            &mut enc,
            "vccfs_catalog_memory_budget_bytes",
            "the catalog's memory budget (--catalog-memory)",
            &[(Vec::new(), signed(s.catalog_memory_budget_bytes))],
        )?;
        counter(
            &mut enc,
            "vccfs_catalog_day_evictions",
            "days that left memory",
            &one(s.catalog_day_evictions),
        )?;
        counter(
            &mut enc,
            "vccfs_catalog_day_reloads",
            "days brought back into memory from the saved catalog",
            &one(s.catalog_day_reloads),
        )?;
        counter(
            &mut enc,
            "vccfs_catalog_day_relists",
            "days listed again from the API because they were neither in memory nor saved",
            &one(s.catalog_day_relists),
        )?;
        gauge(
            &mut enc,
            "vccfs_nodes",
            "inodes the kernel holds (looked up, not yet forgotten)",
            &[(Vec::new(), signed(s.nodes))],
        )?;
        counter(
            &mut enc,
            "vccfs_passthrough_opens",
            "opens the kernel serves itself from a checked disk-tier file (FUSE passthrough)",
            &[(Vec::new(), s.passthrough_opens)],
        )?;
        counter(
            &mut enc,
            "vccfs_erasures",
            "interactions erased (vccfs erase, deletions at the API, the fleet)",
            &[(Vec::new(), s.erasures)],
        )?;
        counter(
            &mut enc,
            "vccfs_audit_lines",
            "audit log lines written (--audit-log)",
            &one(s.audit_lines),
        )?;
        counter(
            &mut enc,
            "vccfs_audit_dropped",
            "audit log lines dropped because the queue was full",
            &one(s.audit_dropped),
        )?;
        let l = self.0.fs.latency();
        let m = enc.encode_descriptor(
            "vccfs_read_latency_seconds",
            "time to answer a read",
            None,
            MetricType::Histogram,
        )?;
        let mut m = m;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            l.sum_seconds,
            l.count,
            &l.buckets,
            None,
        )?;
        Ok(())
    }
}

/// The metrics text of `sources` now.
pub fn render(sources: Arc<Sources>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshots(sources)));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// Serve `/metrics` on `listener` (on the current runtime).
pub fn serve(listener: tokio::net::TcpListener, sources: Arc<Sources>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let sources = Arc::clone(&sources);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    render(sources),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
}
