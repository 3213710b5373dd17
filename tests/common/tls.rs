//! TLS for the tests: a certificate authority made for the test (rcgen) and
//! stunnel (Debian's `stunnel4`) terminating TLS in front of a plain local
//! server, as a provider's or a managed Kafka's TLS front end would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and one server certificate it signed for `localhost` and
/// `127.0.0.1`, written as PEM files into a temporary directory.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA's certificate: what a client trusts (`send.ca_file`, `ssl.ca.location`).
    pub ca_pem: PathBuf,
    /// The server's certificate and key.
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "smsflow test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();

        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        TestCa {
            ca_pem: write("ca.pem", ca_cert.pem()),
            cert_pem: write("server.pem", server.pem()),
            key_pem: write("server.key", key.serialize_pem()),
            dir,
        }
    }
}

/// stunnel accepting TLS on a free loopback port and forwarding plain TCP
/// to `backend`; stopped on drop.
pub struct Stunnel {
    child: Child,
    pub port: u16,
}

impl Stunnel {
    /// Start stunnel with `ca`'s server certificate on `port` (0: a free one).
    pub fn start(ca: &TestCa, port: u16, backend: SocketAddr) -> Stunnel {
        let port = if port == 0 { super::free_port() } else { port };
        let conf = ca.dir.path().join(format!("stunnel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = 4\n\n[tls]\naccept = 127.0.0.1:{port}\nconnect = {backend}\ncert = {}\nkey = {}\n",
                ca.cert_pem.display(),
                ca.key_pem.display()
            ),
        )
        .unwrap();
        let stunnel = stunnel_binary();
        let child = Command::new(&stunnel)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", stunnel.display()));
        let tunnel = Stunnel { child, port };
        wait_listening(port);
        tunnel
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// stunnel (`$SMSFLOW_STUNNEL`, or Debian's); panics saying how to install
/// it. Tests check with `require_tools!(Tool::Stunnel)` first.
fn stunnel_binary() -> PathBuf {
    super::tools::Tool::Stunnel.path()
}

/// Wait until something accepts connections on loopback `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "stunnel did not listen on {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
