//! Drives `POST /request-clearance` with keep-alive connections and reports throughput and latency.
//! Closed loop (`--rate 0`): each client sends as fast as answers come. Open loop (`--rate R`): requests are
//! scheduled at R per second in total and latency is measured from the scheduled time, so a stall shows up
//! in the percentiles instead of hiding (no coordinated omission). Bounded by `--duration`; loopback only.

use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    #[arg(long, env = "LEDGIX_VAULT_API_KEY")]
    api_key: String,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Total requests per second across clients; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value = "bench_refund")]
    tool: String,
}

const APPROVED: &[u8] = b"\"status\":\"approved\"";

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    errors: u64,
    not_approved: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !args.url.starts_with("http://127.") && !args.url.starts_with("http://localhost") {
        eprintln!("loadgen: refusing to load anything but a loopback address");
        std::process::exit(2);
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (client, args) = (client.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            run_client(worker, client, args, started, deadline).await
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        if let Ok(t) = task.await {
            total.latencies_us.extend(t.latencies_us);
            total.ok += t.ok;
            total.errors += t.errors;
            total.not_approved += t.not_approved;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((p / 100.0) * (total.latencies_us.len() - 1) as f64).round() as usize;
        total.latencies_us[idx] as f64 / 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "mode": if args.rate == 0 { "closed_loop".to_string() } else { format!("open_loop_{}_rps", args.rate) },
            "concurrency": args.concurrency,
            "seconds": (elapsed * 100.0).round() / 100.0,
            "approved": total.ok,
            "not_approved": total.not_approved,
            "errors": total.errors,
            "approvals_per_second": (total.ok as f64 / elapsed).round(),
            "latency_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "p999": pct(99.9), "max": pct(100.0)},
        })
    );
}

async fn run_client(
    worker: usize,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    args: Args,
    started: Instant,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let uri: http::Uri =
        match format!("{}/request-clearance", args.url.trim_end_matches('/')).parse() {
            Ok(u) => u,
            Err(_) => return tally,
        };
    // Open loop: this client's share of the rate, offset so clients do not fire in lockstep.
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    let mut scheduled = started
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(worker as f64 / args.concurrency as f64)
        });
    let mut n: u64 = 0;
    loop {
        if let Some(interval) = interval {
            tokio::time::sleep_until(scheduled.into()).await;
            scheduled += interval;
        }
        let sent_at = if interval.is_some() {
            scheduled - interval.unwrap_or_default()
        } else {
            Instant::now()
        };
        if Instant::now() >= deadline {
            break;
        }
        n += 1;
        let body = serde_json::json!({
            "tool_name": args.tool,
            "tool_args": {"amount": (n % 90) + 1, "currency": "usd", "customer": format!("cus_{worker}_{n}")},
            "agent_id": format!("load-{worker}"),
            "session_id": format!("s-{worker}"),
        })
        .to_string();
        let request = http::Request::post(uri.clone())
            .header("content-type", "application/json")
            .header("x-vault-api-key", &args.api_key)
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else { break };
        match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                tally
                    .latencies_us
                    .push(sent_at.elapsed().as_micros() as u64);
                if !status.is_success() {
                    tally.errors += 1;
                    if tally.errors <= 3 {
                        eprintln!(
                            "loadgen: HTTP {status}: {}",
                            String::from_utf8_lossy(&bytes)
                        );
                    }
                } else if bytes.windows(APPROVED.len()).any(|w| w == APPROVED) {
                    tally.ok += 1;
                } else {
                    tally.not_approved += 1;
                }
            }
            Err(e) => {
                tally.errors += 1;
                if tally.errors <= 3 {
                    eprintln!("loadgen: transport error: {e}");
                }
            }
        }
    }
    tally
}
