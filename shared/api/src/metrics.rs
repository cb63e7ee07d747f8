//! CloudWatch Embedded Metric Format: one JSON line per request on stderr, which Lambda ships to
//! CloudWatch Logs where the metrics are extracted. No SDK call on the request path.

use serde_json::json;

pub use ledgix_wiring::telemetry::emf::{emit, now_ms, NAMESPACE};

/// The EMF document for one served request.
pub fn request_line(
    route: &str,
    method: &str,
    status: u16,
    latency_ms: f64,
    timestamp_ms: i64,
) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Route"], []],
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "Errors4xx", "Unit": "Count"},
                    {"Name": "Errors5xx", "Unit": "Count"},
                    {"Name": "Latency", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Route": format!("{method} {route}"),
        "Status": status,
        "Requests": 1,
        "Errors4xx": u8::from((400..500).contains(&status)),
        "Errors5xx": u8::from(status >= 500),
        "Latency": latency_ms,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_are_valid_emf() {
        let line: serde_json::Value = serde_json::from_str(&super::request_line(
            "/request-clearance",
            "POST",
            503,
            1.5,
            1,
        ))
        .expect("json");
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "LedgixVault"
        );
        assert_eq!(line["Errors5xx"], 1);
        assert_eq!(line["Route"], "POST /request-clearance");
        for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
        {
            let name = metric["Name"].as_str().expect("name");
            assert!(
                line.get(name).is_some(),
                "every declared metric has a value: {name}"
            );
        }
    }
}
