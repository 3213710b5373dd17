//! URL encoding as Kannel speaks it (the `percent-encoding` crate) and a
//! blocking GET (reqwest on a runtime of its own), usable from sync code and
//! from inside async tests alike.

use std::sync::OnceLock;
use std::time::Duration;

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but `A-Za-z0-9-_.~` (RFC 3986's unreserved characters).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode everything but `A-Za-z0-9-_.~`.
pub fn url_encode(b: &[u8]) -> String {
    percent_encode(b, QUERY_VALUE).to_string()
}

/// Percent-encode every byte but letters and digits (what fakesmsc's
/// `ucs2`/`data`/`udh` fields take: it URL-decodes them).
pub fn url_encode_all(b: &[u8]) -> String {
    percent_encode(b, NON_ALPHANUMERIC).to_string()
}

/// Decode `%XX` and `+` (space), as Kannel's `octstr_url_decode` does; a
/// malformed `%` stays as it is.
pub fn url_decode(s: &str) -> Vec<u8> {
    percent_decode(s.replace('+', " ").as_bytes()).collect()
}

/// A query string's parameters, values URL-decoded to bytes (they may be
/// binary, so not `form_urlencoded`'s strings).
pub fn parse_query(q: &str) -> Vec<(String, Vec<u8>)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&url_decode(k)).into_owned(),
                url_decode(v),
            )
        })
        .collect()
}

/// Whether every character is in the GSM 03.38 default alphabet or its
/// extension table (what coding 0 can carry): smsflow's own analysis.
pub fn is_gsm7(s: &str) -> bool {
    smsflow::sms::analyze(s).0 == smsflow::message::Encoding::Gsm7
}

/// A runtime for [`http_get`]: one worker thread, never shut down.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kannel-http")
            .enable_all()
            .build()
            .expect("a tokio runtime for the Kannel harness's HTTP client")
    })
}

/// GET `url`; returns the status and body. A timeout of 10 s. Blocks the
/// calling thread, whatever it is (the request runs on [`runtime`]).
pub fn http_get(url: &str) -> Result<(u16, Vec<u8>), String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let client = CLIENT
        .get_or_init(|| {
            // No idle connections kept: a box may close one at any time.
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a reqwest client")
        })
        .clone();
    let url = url.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let got = async {
            let res = client.get(&url).send().await?;
            let status = res.status().as_u16();
            Ok::<_, reqwest::Error>((status, res.bytes().await?.to_vec()))
        }
        .await;
        let _ = tx.send(got.map_err(|e| format!("GET {url}: {e}")));
    });
    rx.recv()
        .map_err(|_| "the HTTP client's runtime dropped the request".to_owned())?
}
