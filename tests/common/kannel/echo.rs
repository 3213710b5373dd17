//! A trivial Kannel application ([`EchoApp`]) and Kannel's own ceiling
//! measured with it ([`round_trip`], [`ceiling`]).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{is_gsm7, parse_query, url_encode, Kannel, Mo, MO_QUERY};

/// An MO as the application received it from smsbox.
#[derive(Debug, Clone)]
pub struct MoRequest {
    /// Path and query as received.
    pub uri: String,
    pub params: Vec<(String, Vec<u8>)>,
}

impl MoRequest {
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A parameter as text (lossy UTF-8), "" when missing.
    pub fn get(&self, name: &str) -> String {
        String::from_utf8_lossy(self.bytes(name).unwrap_or_default()).into_owned()
    }

    pub fn text(&self) -> String {
        self.get("text")
    }
}

/// The sendsms call the echo app made for one MO.
#[derive(Debug, Clone)]
pub struct Echo {
    /// The `ref=` of its dlr-url (a counter from 1, in MO arrival order).
    pub reference: u64,
    pub to: String,
    pub text: String,
    pub coding: u8,
    /// HTTP status and body of sendsms (0 and the error on a failed request).
    pub status: u16,
    pub body: String,
}

/// A delivery report GET: `ref` and `status` (`%d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlr {
    pub reference: u64,
    pub status: u32,
    pub uri: String,
}

#[derive(Default)]
struct EchoState {
    sendsms: Option<String>,
    mos: Vec<MoRequest>,
    echoes: Vec<Echo>,
    dlrs: Vec<Dlr>,
    next_ref: u64,
}

/// A trivial Kannel application on a free loopback port: every MO GET
/// (`/mo?...`, see [`EchoApp::get_url`]) is answered 200 with an empty body,
/// then its text is sent back to the sender through sendsms (GET,
/// `charset=UTF-8`, `coding=2` unless [`is_gsm7`]), at most `concurrency`
/// sendsms requests at a time over keep-alive connections; with `dlr`, each
/// with `dlr-mask=31` and a `dlr-url` carrying `ref=<n>`, whose GETs
/// (`/dlr?...`) are recorded. Runs its own tokio runtime on a thread, so it
/// can be used from sync and async tests alike.
pub struct EchoApp {
    pub port: u16,
    state: Arc<Mutex<EchoState>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoApp {
    pub fn start(dlr: bool, concurrency: usize) -> EchoApp {
        use axum::extract::{RawQuery, State};
        use axum::http::Uri;
        use axum::routing::get;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<EchoState>> = Arc::default();

        #[derive(Clone)]
        struct Ctx {
            state: Arc<Mutex<EchoState>>,
            client: reqwest::Client,
            limit: Arc<tokio::sync::Semaphore>,
            dlr: bool,
            port: u16,
        }

        async fn mo(State(ctx): State<Ctx>, uri: Uri, RawQuery(q): RawQuery) -> &'static str {
            let req = MoRequest {
                uri: uri.to_string(),
                params: parse_query(q.as_deref().unwrap_or("")),
            };
            let (reference, sendsms) = {
                let mut st = ctx.state.lock().unwrap();
                st.next_ref += 1;
                st.mos.push(req.clone());
                (st.next_ref, st.sendsms.clone())
            };
            tokio::spawn(async move {
                let Some(sendsms) = sendsms else {
                    return;
                };
                let _permit = ctx.limit.acquire().await.unwrap();
                let text = req.text();
                let to = req.get("from");
                let coding = if is_gsm7(&text) { 0 } else { 2 };
                let mut url = format!(
                    "{sendsms}&from={}&to={}&text={}&charset=UTF-8",
                    url_encode(req.get("to").as_bytes()),
                    url_encode(to.as_bytes()),
                    url_encode(text.as_bytes())
                );
                if coding == 2 {
                    url.push_str("&coding=2");
                }
                if ctx.dlr {
                    let dlr_url = format!(
                        "http://127.0.0.1:{}/dlr?ref={reference}&status=%d",
                        ctx.port
                    );
                    url.push_str(&format!(
                        "&dlr-mask=31&dlr-url={}",
                        url_encode(dlr_url.as_bytes())
                    ));
                }
                let (status, body) = match ctx.client.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (status, r.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string()),
                };
                ctx.state.lock().unwrap().echoes.push(Echo {
                    reference,
                    to,
                    text,
                    coding,
                    status,
                    body,
                });
            });
            ""
        }

        async fn dlr_report(
            State(ctx): State<Ctx>,
            uri: Uri,
            RawQuery(q): RawQuery,
        ) -> &'static str {
            let req = MoRequest {
                uri: uri.to_string(),
                params: parse_query(q.as_deref().unwrap_or("")),
            };
            ctx.state.lock().unwrap().dlrs.push(Dlr {
                reference: req.get("ref").parse().unwrap_or(0),
                status: req.get("status").parse().unwrap_or(0),
                uri: req.uri,
            });
            ""
        }

        let ctx = Ctx {
            state: state.clone(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency.max(1))
                .build()
                .unwrap(),
            limit: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            dlr,
            port,
        };
        let app = axum::Router::new()
            .route("/mo", get(mo))
            .route("/dlr", get(dlr_report))
            .with_state(ctx);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                // Not a graceful shutdown: smsbox keeps its connections open.
                tokio::select! {
                    r = axum::serve(listener, app) => r.unwrap(),
                    _ = rx => {}
                }
            });
        });
        EchoApp {
            port,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The get-url for [`Kannel::start`].
    pub fn get_url(&self) -> String {
        format!("http://127.0.0.1:{}/mo?{MO_QUERY}", self.port)
    }

    /// Send the echoes through this Kannel (MOs received before are not
    /// echoed).
    pub fn connect(&self, k: &Kannel) {
        self.state.lock().unwrap().sendsms = Some(format!(
            "{}?username={}&password={}",
            k.sendsms_url(),
            k.username(),
            k.password()
        ));
    }

    pub fn mos(&self) -> Vec<MoRequest> {
        self.state.lock().unwrap().mos.clone()
    }

    pub fn mo_count(&self) -> usize {
        self.state.lock().unwrap().mos.len()
    }

    pub fn echoes(&self) -> Vec<Echo> {
        self.state.lock().unwrap().echoes.clone()
    }

    pub fn dlrs(&self) -> Vec<Dlr> {
        self.state.lock().unwrap().dlrs.clone()
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One round-trip measurement.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    pub n: usize,
    /// MOs fakesmsc reported sent, and `Got message` lines it printed.
    pub sent: usize,
    pub received: usize,
    /// From starting fakesmsc (it connects, then sends at once) to the n-th
    /// MT seen in its output (polled every 5 ms).
    pub elapsed: Duration,
    /// `received / elapsed`, messages per second.
    pub rate: f64,
    /// fakesmsc's own `from first to last received message X s, Y msgs/s`.
    pub fakesmsc_rate: Option<f64>,
    pub fakesmsc_seconds: Option<f64>,
}

/// Send `n` copies of `mo` with `fakesmsc -i 0 -m n` through `kannel`, whose
/// application answers each with one single-part MT, and wait (at most
/// `timeout`) until n MTs came back. Does not panic on a shortfall: check
/// `received`. The application is whatever `kannel`'s get-url points at
/// ([`EchoApp`] for [`ceiling`], smsflow for the benchmark).
pub fn round_trip(kannel: &Kannel, mo: &Mo, n: usize, timeout: Duration) -> RoundTrip {
    let f = kannel.fakesmsc(0.0, n as u64, std::slice::from_ref(mo));
    let deadline = f.started + timeout;
    // Count `Got message` lines as they are appended, without re-reading.
    let mut log = std::fs::File::open(&f.log).unwrap();
    let mut partial: Vec<u8> = Vec::new();
    let mut received = 0;
    let mut done_at;
    loop {
        log.read_to_end(&mut partial).unwrap();
        if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
            received += String::from_utf8_lossy(&partial[..end])
                .matches(": Got message ")
                .count();
            partial.drain(..=end);
        }
        done_at = Instant::now();
        if received >= n || done_at > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = done_at - f.started;
    let sent = f.sent_count();
    let summary = f.stop();
    RoundTrip {
        n,
        sent: summary.sent.map_or(sent, |s| s as usize),
        received,
        elapsed,
        rate: received as f64 / elapsed.as_secs_f64(),
        fakesmsc_rate: summary.received_rate,
        fakesmsc_seconds: summary.first_to_last_received,
    }
}

/// Kannel's own round trip with [`EchoApp`] (concurrency 32, no DLRs, log
/// files at warning level): `fakesmsc -i 0 -m n` → bearerbox → smsbox → the
/// app → sendsms → bearerbox → fakesmsc. Panics with the logs unless all n
/// came back within 60 s + 50 ms per message.
pub fn ceiling_round_trip(n: usize) -> RoundTrip {
    let app = EchoApp::start(false, 32);
    let k = Kannel::start_with_log_level(&app.get_url(), 2);
    app.connect(&k);
    let timeout = Duration::from_secs(60) + Duration::from_millis(50 * n as u64);
    let rt = round_trip(&k, &Mo::text("255700000001", "15000", "ping"), n, timeout);
    if rt.received < n {
        panic!(
            "only {} of {n} echoes came back ({} MOs reached the app, {} sendsms calls: {:?})\n{}",
            rt.received,
            app.mo_count(),
            app.echoes().len(),
            app.echoes().iter().find(|e| e.status != 202),
            k.logs()
        );
    }
    rt
}

/// Messages per second Kannel round-trips by itself (see
/// [`ceiling_round_trip`]).
pub fn ceiling(n: usize) -> f64 {
    ceiling_round_trip(n).rate
}
