//! TLS tests: a real rustls server on 127.0.0.1 with certificates made per test, and a client
//! that records which certificate each handshake was shown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

struct TestCert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_cert() -> TestCert {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    TestCert {
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
        der: made.cert.der().clone(),
    }
}

/// Writes beside the target and renames over it, as cert managers do.
fn replace(path: &Path, contents: &str) {
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, contents).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

fn install(dir: &Path, cert: &str, key: &str) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    replace(&files.cert, cert);
    replace(&files.key, key);
    files
}

/// Accepts TLS connections and echoes what each one sends.
async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 256];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn connector(trusted: &[&TestCert]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn connect(addr: SocketAddr, connector: &TlsConnector) -> TlsStream<TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        connector.connect(name, tcp).await.unwrap()
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .expect("handshake timed out")
}

fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn echo(stream: &mut TlsStream<TcpStream>, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut buf = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(buf, message);
}

/// Opens new connections until one shows `want`, or gives up after a few seconds.
async fn wait_for_cert(addr: SocketAddr, connector: &TlsConnector, want: &CertificateDer<'_>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if presented(&connect(addr, connector).await) == *want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never switched certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn server_presents_the_loaded_certificate_over_http11() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_cert();
    let files = install(dir.path(), &first.cert_pem, &first.key_pem);
    let (config, handle) = load_server_config(files).unwrap();
    let addr = serve(config).await;

    let mut stream = connect(addr, &connector(&[&first])).await;
    assert_eq!(presented(&stream), first.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(handle.current_certificate(), first.der);
    echo(&mut stream, b"ping").await;
}

#[tokio::test]
async fn reload_serves_new_handshakes_and_spares_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (make_cert(), make_cert());
    let files = install(dir.path(), &first.cert_pem, &first.key_pem);
    let (config, handle) = load_server_config(files).unwrap();
    let addr = serve(config).await;
    let connector = connector(&[&first, &second]);

    let mut before = connect(addr, &connector).await;
    assert_eq!(presented(&before), first.der);

    install(dir.path(), &second.cert_pem, &second.key_pem);
    handle.reload().unwrap();

    let mut after = connect(addr, &connector).await;
    assert_eq!(presented(&after), second.der);
    echo(&mut after, b"new").await;
    echo(&mut before, b"old connection still talks").await;
    assert_eq!(presented(&before), first.der);
}

#[tokio::test]
async fn broken_files_keep_the_current_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_cert();
    let files = install(dir.path(), &first.cert_pem, &first.key_pem);
    let (config, handle) = load_server_config(files.clone()).unwrap();
    let addr = serve(config).await;
    let connector = connector(&[&first]);

    let truncated = &first.cert_pem[..first.cert_pem.len() / 2];
    install(dir.path(), truncated, &first.key_pem);
    assert!(
        matches!(handle.reload(), Err(TlsError::Pem { .. })),
        "truncated cert"
    );

    install(dir.path(), "no pem here\n", &first.key_pem);
    assert!(
        matches!(handle.reload(), Err(TlsError::NoCertificate { .. })),
        "empty cert"
    );

    install(dir.path(), &first.cert_pem, "");
    assert!(
        matches!(handle.reload(), Err(TlsError::NoKey { .. })),
        "empty key"
    );

    std::fs::remove_file(&files.key).unwrap();
    assert!(
        matches!(handle.reload(), Err(TlsError::Read { .. })),
        "missing key"
    );

    assert_eq!(presented(&connect(addr, &connector).await), first.der);
    assert_eq!(handle.current_certificate(), first.der);
}

#[tokio::test]
async fn key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (make_cert(), make_cert());
    let files = install(dir.path(), &first.cert_pem, &first.key_pem);
    let (config, handle) = load_server_config(files).unwrap();
    let addr = serve(config).await;

    install(dir.path(), &second.cert_pem, &first.key_pem);
    let err = handle.reload().unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("key.pem"), "{err}");

    let connector = connector(&[&first, &second]);
    assert_eq!(presented(&connect(addr, &connector).await), first.der);
}

#[test]
fn startup_load_reports_unusable_files() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (make_cert(), make_cert());

    let missing = TlsFiles {
        cert: dir.path().join("nope.pem"),
        key: dir.path().join("no.pem"),
    };
    let err = load_server_config(missing).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }) && err.to_string().contains("nope.pem"));

    let mismatched = install(dir.path(), &first.cert_pem, &second.key_pem);
    assert!(matches!(
        load_server_config(mismatched),
        Err(TlsError::KeyMismatch { .. })
    ));
}

#[tokio::test]
async fn one_file_may_hold_both_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_cert();
    let both = dir.path().join("both.pem");
    std::fs::write(&both, format!("{}{}", first.cert_pem, first.key_pem)).unwrap();
    let (config, _handle) = load_server_config(TlsFiles {
        cert: both.clone(),
        key: both,
    })
    .unwrap();
    let addr = serve(config).await;

    assert_eq!(
        presented(&connect(addr, &connector(&[&first])).await),
        first.der
    );
}

#[tokio::test]
async fn watcher_reloads_renamed_files_and_skips_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (make_cert(), make_cert());
    let files = install(dir.path(), &first.cert_pem, &first.key_pem);
    let (config, handle) = load_server_config(files.clone()).unwrap();
    let addr = serve(config).await;
    let connector = connector(&[&first, &second]);
    let _watcher = watch(&files, handle.clone()).unwrap();

    // A half-written renewal must not replace a working certificate.
    install(dir.path(), &second.cert_pem, &first.key_pem);
    tokio::time::sleep(DEBOUNCE * 3).await;
    assert_eq!(presented(&connect(addr, &connector).await), first.der);

    install(dir.path(), &second.cert_pem, &second.key_pem);
    wait_for_cert(addr, &connector, &second.der).await;
    assert_eq!(handle.current_certificate(), second.der);
}

#[test]
fn only_writes_and_renames_count_as_changes() {
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    assert!(is_change(&EventKind::Create(CreateKind::File)));
    assert!(is_change(&EventKind::Modify(ModifyKind::Name(
        RenameMode::To
    ))));
    assert!(is_change(&EventKind::Access(AccessKind::Close(
        AccessMode::Write
    ))));
    assert!(!is_change(&EventKind::Access(AccessKind::Open(
        AccessMode::Any
    ))));
    assert!(!is_change(&EventKind::Access(AccessKind::Close(
        AccessMode::Read
    ))));
    assert_eq!(parent_folder(Path::new("cert.pem")), PathBuf::from("."));
    assert_eq!(
        parent_folder(Path::new("/etc/tls/cert.pem")),
        PathBuf::from("/etc/tls")
    );
}
