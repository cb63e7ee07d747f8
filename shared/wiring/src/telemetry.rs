//! JSON logs on stderr (stdout stays for what a user pastes), filtered by RUST_LOG.

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_writer(std::io::stderr)
        .try_init();
}

/// CloudWatch Embedded Metric Format: metrics as JSON lines on stderr, which Lambda ships to CloudWatch Logs
/// where the metrics are extracted. No SDK call, nothing on the request path.
pub mod emf {
    use std::io::Write as _;

    use ledgix_core::sealing::SealReport;
    use serde_json::json;

    pub const NAMESPACE: &str = "LedgixVault";

    /// EMF's `Timestamp`: milliseconds since the Unix epoch.
    pub fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn emit(line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    /// The anchor lag of one tenant after a round: `AnchorLagSeconds` (age of its oldest unsealed event) and
    /// `AnchorEventsBehind`, per tenant and without dimensions (the series the anchor-lag alarm watches, by its
    /// Maximum).
    pub fn anchor_lag_line(tenant_id: &str, report: &SealReport, timestamp_ms: i64) -> String {
        json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["TenantId"], []],
                    "Metrics": [
                        {"Name": "AnchorLagSeconds", "Unit": "Seconds"},
                        {"Name": "AnchorEventsBehind", "Unit": "Count"},
                        {"Name": "AnchorEventsSealed", "Unit": "Count"}
                    ]
                }]
            },
            "TenantId": tenant_id,
            "AnchorLagSeconds": report.lag.lag_seconds,
            "AnchorEventsBehind": report.lag.events_behind,
            "AnchorEventsSealed": report.sequenced,
        })
        .to_string()
    }

    /// A round where no tenant had anything to seal still reports a zero lag, so the alarm's series never
    /// goes silent while anchoring runs.
    pub fn idle_round_line(timestamp_ms: i64) -> String {
        json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[]],
                    "Metrics": [
                        {"Name": "AnchorLagSeconds", "Unit": "Seconds"},
                        {"Name": "AnchorEventsBehind", "Unit": "Count"}
                    ]
                }]
            },
            "AnchorLagSeconds": 0,
            "AnchorEventsBehind": 0,
        })
        .to_string()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use ledgix_core::sealing::AnchorLag;

        #[test]
        fn lag_lines_are_emf_with_a_per_tenant_and_an_overall_series() {
            let report = SealReport {
                sequenced: 500,
                lag: AnchorLag {
                    events_behind: 42,
                    oldest_unsequenced_at: None,
                    lag_seconds: 12.5,
                },
                ..Default::default()
            };
            let line: serde_json::Value =
                serde_json::from_str(&anchor_lag_line("t_1", &report, 7)).expect("json");
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], NAMESPACE);
            assert_eq!(directive["Dimensions"], json!([["TenantId"], []]));
            // Every metric named in the directive is a member of the document (EMF's rule).
            for metric in directive["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("name");
                assert!(line[name].is_number(), "{name}");
            }
            assert_eq!(line["AnchorLagSeconds"], 12.5);
            assert_eq!(line["AnchorEventsBehind"], 42);
            assert_eq!(line["TenantId"], "t_1");
            let idle: serde_json::Value = serde_json::from_str(&idle_round_line(7)).expect("json");
            assert_eq!(idle["AnchorLagSeconds"], 0);
        }
    }
}
