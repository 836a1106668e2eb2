//! Toxics: what a link does to what passes through it. The TCP ones are
//! Toxiproxy's, with its names, attributes (milliseconds, KB/s, bytes) and
//! semantics, so a Toxiproxy client or a Toxiproxy user's notes work
//! unchanged; the `http_*` ones are what Toxiproxy lacks (shopify/toxiproxy#50,
//! #160): faults per request, which only a link in HTTP mode can apply.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which way the bytes flow: `upstream` from the client to the service,
/// `downstream` from the service back (Toxiproxy's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// From the client to the service: the request.
    Upstream,
    /// From the service back to the client: the answer (Toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    /// Its name in Toxiproxy's JSON: `upstream` or `downstream`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's kind and its attributes, as Toxiproxy's JSON writes them
/// (`"type": "latency", "attributes": {"latency": 100, "jitter": 10}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum Kind {
    /// Each chunk is held `latency` ± `jitter` ms after it arrived (so a
    /// stream is delayed, not slowed).
    Latency {
        /// The hold, in milliseconds.
        #[serde(default)]
        latency: u64,
        /// How far each hold may be from `latency`, either way, in milliseconds.
        #[serde(default)]
        jitter: u64,
    },
    /// At most `rate` KB/s.
    Bandwidth {
        /// The most that passes, in KB a second (0: no limit).
        #[serde(default)]
        rate: u64,
    },
    /// The close is held `delay` ms after the source closed.
    SlowClose {
        /// How long the close is held, in milliseconds.
        #[serde(default)]
        delay: u64,
    },
    /// Nothing passes; the connection is closed after `timeout` ms (never if
    /// 0). What it swallowed is lost, so when a timeout of 0 goes, a
    /// connection that lost data is reset rather than resumed: TCP never
    /// loses bytes mid-stream, and a half-open connection's peer answers the
    /// next segment with a reset.
    Timeout {
        /// Milliseconds until the connection is closed; 0 keeps it open.
        #[serde(default)]
        timeout: u64,
    },
    /// `timeout` ms after the first data in its direction, the connection
    /// is reset (RST, unsent data discarded), as Toxiproxy's reset_peer.
    ResetPeer {
        /// Milliseconds from the first data to the reset; 0 resets at the first data.
        #[serde(default)]
        timeout: u64,
    },
    /// The connection is closed once `bytes` have passed.
    LimitData {
        /// How many bytes pass before the close.
        #[serde(default)]
        bytes: u64,
    },
    /// Chunks cut into pieces of `average_size` ± `size_variation` bytes,
    /// `delay` µs apart.
    Slicer {
        /// The pieces' average size in bytes (above 0).
        #[serde(default)]
        average_size: usize,
        /// How far a piece's size may be from the average, in bytes.
        #[serde(default)]
        size_variation: usize,
        /// The pause between two pieces, in microseconds.
        #[serde(default)]
        delay: u64,
    },
    /// Gantry's own: nothing passes and nothing is lost. Data waits, as on
    /// a partitioned route where TCP keeps retransmitting, and flows again,
    /// in order, when the toxic goes.
    Blackhole {},
    /// HTTP links: the request is answered `status` by the link itself
    /// without reaching the service — every request, or only the `first` N
    /// the toxic sees when `first` is above 0.
    HttpError {
        /// The status the link answers with (503 unless given).
        #[serde(default = "service_unavailable")]
        status: u16,
        /// How many requests it fails before it lets the rest through; 0
        /// fails every one.
        #[serde(default)]
        first: u64,
    },
    /// HTTP links: the request waits `delay` ms before it is sent on.
    HttpDelay {
        /// How long each request waits, in milliseconds.
        #[serde(default)]
        delay: u64,
    },
    /// HTTP links: the service's status and headers are passed on, then the
    /// body never comes (the connection hangs until the client gives up).
    HttpHang {},
}

fn service_unavailable() -> u16 {
    503
}

impl Kind {
    /// Its name in Toxiproxy's `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency { .. } => "latency",
            Kind::Bandwidth { .. } => "bandwidth",
            Kind::SlowClose { .. } => "slow_close",
            Kind::Timeout { .. } => "timeout",
            Kind::ResetPeer { .. } => "reset_peer",
            Kind::LimitData { .. } => "limit_data",
            Kind::Slicer { .. } => "slicer",
            Kind::Blackhole {} => "blackhole",
            Kind::HttpError { .. } => "http_error",
            Kind::HttpDelay { .. } => "http_delay",
            Kind::HttpHang {} => "http_hang",
        }
    }

    /// Whether it acts on requests (an HTTP link's) rather than bytes.
    pub fn is_http(&self) -> bool {
        matches!(
            self,
            Kind::HttpError { .. } | Kind::HttpDelay { .. } | Kind::HttpHang {}
        )
    }

    /// The hold a `latency` toxic puts on one chunk.
    pub fn latency(&self) -> Option<Duration> {
        match *self {
            Kind::Latency { latency, jitter } => {
                let spread = if jitter == 0 { 0 } else { fastrand::u64(0..=2 * jitter) };
                Some(Duration::from_millis((latency + spread).saturating_sub(jitter)))
            }
            _ => None,
        }
    }
}

/// One toxic of a link, as Toxiproxy's API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    /// Unique within its link; `<type>_<stream>` when not given.
    #[serde(default)]
    pub name: String,
    /// What it does, with its attributes.
    #[serde(flatten)]
    pub kind: Kind,
    /// Which direction it acts on; downstream when not given. HTTP toxics
    /// act on the answer, so theirs is always downstream.
    #[serde(default)]
    pub stream: Stream,
    /// The chance, from 0 to 1, that it applies: per connection for TCP
    /// toxics (decided when the connection first meets it), per request
    /// for HTTP ones.
    #[serde(default = "always")]
    pub toxicity: f32,
}

fn always() -> f32 {
    1.0
}

impl Toxic {
    /// A toxic on `stream` that always applies, named `<type>_<stream>`.
    pub fn new(kind: Kind, stream: Stream) -> Self {
        let mut t = Toxic {
            name: String::new(),
            kind,
            stream,
            toxicity: 1.0,
        };
        t.name = t.default_name();
        t
    }

    /// This toxic applying with probability `toxicity`.
    pub fn with_toxicity(mut self, toxicity: f32) -> Self {
        self.toxicity = toxicity;
        self
    }

    /// This toxic named `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// `<type>_<stream>`, e.g. `latency_downstream`: the name it gets when
    /// none is given, as in Toxiproxy.
    pub fn default_name(&self) -> String {
        format!("{}_{}", self.kind.type_name(), self.stream.name())
    }

    /// Whether it takes effect this time (a roll against its toxicity).
    pub fn roll(&self) -> bool {
        self.toxicity >= 1.0 || fastrand::f32() < self.toxicity
    }

    /// What is wrong with it, if anything, for an API client.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.toxicity) {
            return Err(format!("toxicity {} is not from 0 to 1", self.toxicity));
        }
        if self.kind.is_http() && self.stream != Stream::Downstream {
            return Err(format!(
                "{} acts on the answer: its stream is downstream",
                self.kind.type_name()
            ));
        }
        match self.kind {
            Kind::Slicer { average_size: 0, .. } => Err("slicer needs an average_size above 0".into()),
            Kind::HttpError { status, .. } if !(100..=599).contains(&status) => {
                Err(format!("http_error status {status} is not from 100 to 599"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_toxiproxy_json() {
        let t: Toxic = serde_json::from_str(
            r#"{"name":"lat","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":100,"jitter":10}}"#,
        )
        .unwrap();
        assert_eq!(
            t.kind,
            Kind::Latency {
                latency: 100,
                jitter: 10
            }
        );
        assert_eq!((t.stream, t.toxicity, t.name.as_str()), (Stream::Upstream, 0.5, "lat"));
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["type"], "latency");
        assert_eq!(back["attributes"]["latency"], 100);
        // Defaults as Toxiproxy's: downstream, toxicity 1, name filled in later.
        let t: Toxic = serde_json::from_str(r#"{"type":"reset_peer","attributes":{}}"#).unwrap();
        assert_eq!((t.stream, t.toxicity), (Stream::Downstream, 1.0));
        assert_eq!(t.default_name(), "reset_peer_downstream");
        let t: Toxic = serde_json::from_str(r#"{"type":"http_error","attributes":{"first":2}}"#).unwrap();
        assert_eq!(t.kind, Kind::HttpError { status: 503, first: 2 });
        assert!(serde_json::from_str::<Toxic>(r#"{"type":"meteor","attributes":{}}"#).is_err());
    }

    #[test]
    fn refuses_what_cannot_apply() {
        let up = Toxic::new(Kind::HttpDelay { delay: 5 }, Stream::Upstream);
        assert!(up.check().unwrap_err().contains("downstream"));
        let odd = Toxic::new(Kind::Latency { latency: 1, jitter: 0 }, Stream::Upstream).with_toxicity(2.0);
        assert!(odd.check().is_err());
    }

    #[test]
    fn jitter_spreads_around_the_latency() {
        let k = Kind::Latency {
            latency: 100,
            jitter: 20,
        };
        for _ in 0..200 {
            let d = k.latency().unwrap().as_millis();
            assert!((80..=120).contains(&d), "{d}");
        }
    }
}
