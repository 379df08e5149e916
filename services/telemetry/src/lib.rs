//! Logs, traces and metrics for every ferrite service.
//!
//! ```text
//!  tracing spans and events ─┬─ fmt layer (text | json, FERRITE_LOG) ─► stdout
//!                            └─ OpenTelemetry layer (only with a traces endpoint)
//!                                 └─ batch ─► OTLP/gRPC ─► collector (Jaeger, OTel Collector, …)
//!  metrics facade (counter!, histogram!, gauge!) ─► Prometheus recorder ─► GET /metrics
//!  each request ─► [`layer::observe`]: traceparent in ─► span ─► metrics, one debug line
//!  each outgoing call ─► [`propagation`]: the current span's traceparent out
//! ```
//!
//! With no traces endpoint no OpenTelemetry layer exists: the spans are `debug` level and the
//! default `info` log filter turns them off at their call sites.

pub mod layer;
pub mod prom;
pub mod propagation;
pub mod store;

use std::time::Duration;

use anyhow::{Context as _, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Logging and tracing settings shared by `ferrite serve` and every `ferrite run` service.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log line format; the level is set with FERRITE_LOG (env-filter syntax, e.g.
    /// `info,ferrite_router=debug`).
    #[arg(long, global = true, env = "FERRITE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (e.g. `http://otel-collector:4317`).
    /// Without it, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is used;
    /// with none, traces are off.
    #[arg(long, global = true, env = "FERRITE_TRACES_ENDPOINT")]
    pub traces_endpoint: Option<String>,
    /// Fraction of new traces sampled (0.0–1.0). A request whose `traceparent` says sampled
    /// is always traced, one that says not sampled never is.
    #[arg(
        long,
        global = true,
        env = "FERRITE_TRACES_SAMPLING_RATIO",
        default_value_t = 1.0
    )]
    pub traces_sampling_ratio: f64,
}

impl TelemetryArgs {
    /// The collector to send traces to, if any.
    fn endpoint(&self) -> Option<String> {
        self.traces_endpoint
            .clone()
            .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"))
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Keeps trace export running; dropping it flushes the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("flushing traces at exit: {e}");
        }
    }
}

/// Set up logging, trace export (when configured) and the metrics recorder for the process
/// running `service` (`serve`, `router`, `ingester`, …). Call once, inside the Tokio runtime
/// (the OTLP exporter's channel lives on it).
pub fn init(service: &str, args: &TelemetryArgs) -> anyhow::Result<Telemetry> {
    let provider = match args.endpoint() {
        Some(endpoint) => Some(tracer_provider(
            service,
            &endpoint,
            args.traces_sampling_ratio,
        )?),
        None => None,
    };
    let filter = EnvFilter::try_from_env("FERRITE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: `kubectl logs` and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("ferrite"))
            .with_filter(FilterFn::new(exported))
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .context("installing the log subscriber")?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    prom::install(service)?;
    if let Some(endpoint) = args.endpoint() {
        tracing::info!(%endpoint, ratio = args.traces_sampling_ratio, "exporting traces over OTLP/gRPC");
    }
    Ok(Telemetry { provider })
}

/// What reaches the collector: ferrite's spans (debug and up) and its events at info and up
/// (they become span events).
fn exported(meta: &Metadata<'_>) -> bool {
    let level = if meta.is_span() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    meta.target().starts_with("ferrite") && *meta.level() <= level
}

fn tracer_provider(service: &str, endpoint: &str, ratio: f64) -> anyhow::Result<SdkTracerProvider> {
    if !(0.0..=1.0).contains(&ratio) {
        bail!("--traces-sampling-ratio must be between 0.0 and 1.0, got {ratio}");
    }
    if let Some(protocol) = env_nonempty("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_PROTOCOL"))
        && protocol != "grpc"
    {
        bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: ferrite exports traces over OTLP/gRPC only (grpc)"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("the OTLP exporter for {endpoint}"))?;
    let name = env_nonempty("OTEL_SERVICE_NAME").unwrap_or_else(|| match service {
        "serve" => "ferrite".to_owned(),
        other => format!("ferrite-{other}"),
    });
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build())
}
