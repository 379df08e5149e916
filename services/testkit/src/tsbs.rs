//! A deterministic generator of TSBS "cpu-only" line protocol.
//!
//! Follows the shape of the Time Series Benchmark Suite's `cpu-only` use case in its `influx`
//! format (`tsbs_generate_data --use-case=cpu-only --format=influx`):
//!
//! ```text
//! cpu,hostname=host_0,region=eu-central-1,datacenter=eu-central-1a,rack=6,os=Ubuntu15.10,arch=x86,team=SF,service=19,service_version=1,service_environment=test usage_user=58i,usage_system=2i,usage_idle=24i,usage_nice=61i,usage_iowait=22i,usage_irq=63i,usage_softirq=6i,usage_steal=44i,usage_guest=80i,usage_guest_nice=38i 1451606400000000000
//! ```
//!
//! * 10 tags per host, chosen once per host from TSBS's value sets: 9 regions with their
//!   datacenters, rack 0–99, 3 OS versions, 2 architectures, 4 teams, service 0–19, service
//!   version 0–1, 3 environments. Tag order is TSBS's (not sorted).
//! * 10 fields, each a random walk clamped to [0, 100] with normally distributed steps
//!   (TSBS's `CWD(ND(0,1), 0, 100, U(0,100))`), written as integers with the `i` suffix as
//!   TSBS does for cpu (`ToPointAllInt64`). [`CpuOnly::float_fields`] writes them as floats
//!   instead, to exercise float parsing.
//! * Time advances by the interval (TSBS default 10 s from 2016-01-01T00:00:00Z); each
//!   timestamp emits one line per host, host 0 first, then all hosts step their walks.
//!
//! The same seed always gives the same bytes (own xorshift generator, integer-only math), so
//! benchmark inputs are reproducible across machines.

use std::fmt::Write;

/// TSBS's default start: 2016-01-01T00:00:00Z in nanoseconds.
pub const TSBS_START_NS: i64 = 1_451_606_400_000_000_000;

/// TSBS's default interval between readings: 10 seconds in nanoseconds.
pub const TSBS_INTERVAL_NS: i64 = 10_000_000_000;

/// Field names of the cpu measurement, in TSBS order.
pub const CPU_FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

/// Tag keys of the cpu measurement, in TSBS order.
pub const CPU_TAGS: [&str; 10] = [
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
];

const REGIONS: [(&str, &[&str]); 9] = [
    (
        "us-east-1",
        &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    ),
    ("us-west-1", &["us-west-1a", "us-west-1b"]),
    ("us-west-2", &["us-west-2a", "us-west-2b", "us-west-2c"]),
    ("eu-west-1", &["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    ("eu-central-1", &["eu-central-1a", "eu-central-1b"]),
    ("ap-southeast-1", &["ap-southeast-1a", "ap-southeast-1b"]),
    ("ap-southeast-2", &["ap-southeast-2a", "ap-southeast-2b"]),
    ("ap-northeast-1", &["ap-northeast-1a", "ap-northeast-1c"]),
    ("sa-east-1", &["sa-east-1a", "sa-east-1b", "sa-east-1c"]),
];
const OS: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCH: [&str; 2] = ["x64", "x86"];
const TEAM: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVIRONMENT: [&str; 3] = ["production", "staging", "test"];

/// Generator state for the TSBS cpu-only use case. See the module doc.
///
/// ```
/// use ferrite_testkit::tsbs::CpuOnly;
///
/// let mut generator = CpuOnly::new(2, 7);
/// let mut out = String::new();
/// generator.write_lines(&mut out, 3); // host_0 and host_1 at t0, then host_0 at t1
/// assert_eq!(out.lines().count(), 3);
/// assert!(out.starts_with("cpu,hostname=host_0,region="));
/// assert_eq!(generator.rows_written(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct CpuOnly {
    interval_ns: i64,
    float_fields: bool,
    rng: Rng,
    /// Per host: `cpu,hostname=...,service_environment=... ` (series key and the space).
    prefixes: Vec<String>,
    /// Per host: the current values of its 10 random walks, each in [0, 100].
    walks: Vec<[f64; 10]>,
    next_host: usize,
    timestamp_ns: i64,
    rows: u64,
}

impl CpuOnly {
    /// `hosts` simulated hosts (at least 1), TSBS's default start and interval, seeded by
    /// `seed`.
    pub fn new(hosts: usize, seed: u64) -> Self {
        let hosts = hosts.max(1);
        let mut rng = Rng::new(seed);
        let mut prefixes = Vec::with_capacity(hosts);
        let mut walks = Vec::with_capacity(hosts);
        for host in 0..hosts {
            let (region, datacenters) = REGIONS[rng.below(REGIONS.len())];
            let datacenter = datacenters[rng.below(datacenters.len())];
            let rack = rng.below(100);
            let os = OS[rng.below(OS.len())];
            let arch = ARCH[rng.below(ARCH.len())];
            let team = TEAM[rng.below(TEAM.len())];
            let service = rng.below(20);
            let service_version = rng.below(2);
            let environment = ENVIRONMENT[rng.below(ENVIRONMENT.len())];
            prefixes.push(format!(
                "cpu,hostname=host_{host},region={region},datacenter={datacenter},rack={rack},\
                 os={os},arch={arch},team={team},service={service},\
                 service_version={service_version},service_environment={environment} "
            ));
            walks.push(std::array::from_fn(|_| rng.unit() * 100.0));
        }
        Self {
            interval_ns: TSBS_INTERVAL_NS,
            float_fields: false,
            rng,
            prefixes,
            walks,
            next_host: 0,
            timestamp_ns: TSBS_START_NS,
            rows: 0,
        }
    }

    /// Starts at `start_ns` instead of 2016-01-01 (only before the first row is written).
    pub fn start_ns(mut self, start_ns: i64) -> Self {
        self.timestamp_ns = start_ns;
        self
    }

    /// Uses `interval_ns` between readings instead of 10 s.
    pub fn interval_ns(mut self, interval_ns: i64) -> Self {
        self.interval_ns = interval_ns;
        self
    }

    /// Writes field values as floats with two decimals (`usage_user=58.27`) instead of TSBS's
    /// integers (`usage_user=58i`).
    pub fn float_fields(mut self, float_fields: bool) -> Self {
        self.float_fields = float_fields;
        self
    }

    /// Number of simulated hosts.
    pub fn hosts(&self) -> usize {
        self.prefixes.len()
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Timestamp of the next row.
    pub fn next_timestamp_ns(&self) -> i64 {
        self.timestamp_ns
    }

    /// Appends `rows` lines (each ending in `\n`), continuing where the last call stopped.
    pub fn write_lines(&mut self, out: &mut String, rows: usize) {
        out.reserve(rows * 330);
        for _ in 0..rows {
            let host = self.next_host;
            out.push_str(&self.prefixes[host]);
            for (i, (name, value)) in CPU_FIELDS.iter().zip(self.walks[host]).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push('=');
                if self.float_fields {
                    // Two decimals, from integer hundredths so no float formatting differs.
                    let hundredths = (value * 100.0) as i64;
                    let _ = write!(out, "{}.{:02}", hundredths / 100, hundredths % 100);
                } else {
                    let _ = write!(out, "{}i", value as i64);
                }
            }
            let _ = writeln!(out, " {}", self.timestamp_ns);
            self.rows += 1;

            self.next_host += 1;
            if self.next_host == self.prefixes.len() {
                self.next_host = 0;
                self.timestamp_ns += self.interval_ns;
                self.step();
            }
        }
    }

    /// `rows` lines as a new string.
    pub fn lines(&mut self, rows: usize) -> String {
        let mut out = String::new();
        self.write_lines(&mut out, rows);
        out
    }

    /// Advances every host's random walks by one normally distributed step each.
    fn step(&mut self) {
        for walk in &mut self.walks {
            for v in walk.iter_mut() {
                *v = (*v + self.rng.normal()).clamp(0.0, 100.0);
            }
        }
    }
}

/// xorshift64* with a splitmix64-scrambled seed: tiny, fast and the same everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 1 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately N(0, 1): a scaled sum of four uniforms (Irwin–Hall), which keeps the
    /// output free of platform-dependent transcendental functions.
    fn normal(&mut self) -> f64 {
        let sum = self.unit() + self.unit() + self.unit() + self.unit();
        (sum - 2.0) * 3.0f64.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_timestamp_has_one_line_per_host_in_host_order() {
        let out = CpuOnly::new(3, 1).lines(7);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 7);
        for (i, line) in lines.iter().enumerate() {
            let host = format!("cpu,hostname=host_{},", i % 3);
            assert!(line.starts_with(&host), "{line}");
            let ts: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(ts, TSBS_START_NS + (i / 3) as i64 * TSBS_INTERVAL_NS);
        }
    }

    #[test]
    fn lines_have_ten_tags_and_ten_integer_fields() {
        let out = CpuOnly::new(5, 2).lines(50);
        for line in out.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "{line}");
            let tags: Vec<&str> = parts[0].split(',').skip(1).collect();
            let keys: Vec<&str> = tags.iter().map(|t| t.split('=').next().unwrap()).collect();
            assert_eq!(keys, CPU_TAGS);
            let fields: Vec<&str> = parts[1].split(',').collect();
            assert_eq!(fields.len(), 10);
            for (f, name) in fields.iter().zip(CPU_FIELDS) {
                let (k, v) = f.split_once('=').unwrap();
                assert_eq!(k, name);
                let n: i64 = v.strip_suffix('i').unwrap().parse().unwrap();
                assert!((0..=100).contains(&n), "{f}");
            }
        }
    }

    #[test]
    fn float_fields_have_two_decimals() {
        let out = CpuOnly::new(2, 3).float_fields(true).lines(10);
        for line in out.lines() {
            let fields = line.split(' ').nth(1).unwrap();
            for f in fields.split(',') {
                let v = f.split_once('=').unwrap().1;
                let (_, decimals) = v.split_once('.').unwrap();
                assert_eq!(decimals.len(), 2, "{f}");
                let x: f64 = v.parse().unwrap();
                assert!((0.0..=100.0).contains(&x));
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_calls_continue_the_stream() {
        let whole = CpuOnly::new(10, 9).lines(95);
        let mut g = CpuOnly::new(10, 9);
        let mut parts = g.lines(40);
        g.write_lines(&mut parts, 55);
        assert_eq!(whole, parts);
        assert_ne!(whole, CpuOnly::new(10, 10).lines(95));
        assert_eq!(g.rows_written(), 95);
        assert_eq!(g.next_timestamp_ns(), TSBS_START_NS + 9 * TSBS_INTERVAL_NS);
    }

    #[test]
    fn start_and_interval_can_be_chosen() {
        let out = CpuOnly::new(1, 0).start_ns(1_000).interval_ns(5).lines(3);
        let ts: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
        assert_eq!(ts, ["1000", "1005", "1010"]);
    }
}
