//! Optional native HTTPS: a rustls server config whose certificate can be replaced while the
//! daemon runs, and a folder watcher that replaces it when a cert manager renews the files.
//!
//! New handshakes pick up a reloaded certificate; open connections keep the one they began
//! with. A reload that fails (unreadable PEM, key not matching the certificate) changes nothing.

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use tracing::{debug, info, info_span, warn};

/// Cert managers write several files in a burst; reload once it has been quiet this long.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The PEM files behind the server certificate. `cert` holds the chain, leaf first; `key` the
/// private key (PKCS#8, PKCS#1 or SEC1). Both may name the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: bad PEM: {source}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{}: no certificate found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: certificate not usable: {source}", path.display())]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{}: no private key found", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: private key not usable: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("building the tls config: {0}")]
    Config(#[source] rustls::Error),
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("starting the tls reload thread: {0}")]
    Thread(#[source] io::Error),
}

/// What the resolver and every [`ReloadHandle`] share.
struct Shared {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Hands every handshake whatever certificate is current at that moment.
#[derive(Debug)]
struct SwappableCert(Arc<Shared>);

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

/// Re-reads the PEM files into a running server config.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    shared: Arc<Shared>,
}

/// Loads `files` into a server config for `tokio_rustls::TlsAcceptor`: ring provider (set
/// here, not taken from the process default), TLS 1.2 and 1.3, ALPN `http/1.1`, no client
/// certificates. The handle reloads the files later.
pub fn load_server_config(files: TlsFiles) -> Result<(Arc<ServerConfig>, ReloadHandle), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = load_certified_key(&files, &provider)?;
    info!(
        cert = %files.cert.display(),
        serial = %serial_of(&key),
        "tls certificate loaded"
    );

    let shared = Arc::new(Shared {
        files,
        current: ArcSwap::from_pointee(key),
        provider: Arc::clone(&provider),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SwappableCert(Arc::clone(&shared))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    Ok((Arc::new(config), ReloadHandle { shared }))
}

impl ReloadHandle {
    /// Re-reads both files and switches to them if they parse and the key matches the
    /// certificate; otherwise keeps the current certificate and returns why. Reads the files
    /// synchronously (they are small).
    pub fn reload(&self) -> Result<(), TlsError> {
        let shared = &self.shared;
        let new = match load_certified_key(&shared.files, &shared.provider) {
            Ok(key) => key,
            Err(err) => {
                warn!(error = %err, "tls reload failed; keeping the current certificate");
                return Err(err);
            }
        };

        let old = shared.current.load_full();
        if old.cert == new.cert {
            debug!("tls files reread; certificate unchanged");
            return Ok(());
        }
        shared.current.store(Arc::new(new));
        info!(
            old_serial = %serial_of(&old),
            new_serial = %serial_of(&shared.current.load()),
            "tls certificate reloaded"
        );
        Ok(())
    }

    /// The leaf certificate new handshakes present.
    pub fn current_certificate(&self) -> CertificateDer<'static> {
        self.shared.current.load().cert[0].clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.shared.files
    }
}

/// Watches the folders holding the cert and key and reloads once changes have settled for
/// 250 ms. Folders, not files, because cert managers replace files by renaming new ones into
/// place. Dropping the returned watcher stops watching.
///
/// A watch on a folder that is itself renamed or deleted is lost; SIGHUP (through
/// [`ReloadHandle::reload`]) still works then.
pub fn watch(
    files: &TlsFiles,
    handle: ReloadHandle,
) -> Result<notify::RecommendedWatcher, TlsError> {
    let (changed, changes) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) if is_change(&event.kind) => {
                let _ = changed.send(());
            }
            Ok(_) => {}
            Err(err) => {
                // An error may mean missed events; reloading costs little and catches up.
                warn!(error = %err, "tls file watcher error");
                let _ = changed.send(());
            }
        }
    })
    .map_err(|source| TlsError::Watch {
        path: files.cert.clone(),
        source,
    })?;

    let folders: BTreeSet<PathBuf> = [&files.cert, &files.key]
        .into_iter()
        .map(|path| parent_folder(path))
        .collect();
    for folder in &folders {
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|source| TlsError::Watch {
                path: folder.clone(),
                source,
            })?;
        debug!(folder = %folder.display(), "watching tls files");
    }

    std::thread::Builder::new()
        .name("tls-reload".to_string())
        .spawn(move || debounce_and_reload(&changes, &handle))
        .map_err(TlsError::Thread)?;
    Ok(watcher)
}

/// Ends when the watcher, and with it the sending side, is dropped.
fn debounce_and_reload(changes: &mpsc::Receiver<()>, handle: &ReloadHandle) {
    while changes.recv().is_ok() {
        loop {
            match changes.recv_timeout(DEBOUNCE) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let _span = info_span!("tls_reload", trigger = "watch").entered();
        let _ = handle.reload();
    }
}

/// Our own reads show up as open/read/close events; only writes and renames matter.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn parent_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn load_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: files.cert.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }

    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        source => TlsError::Pem {
            path: files.key.clone(),
            source,
        },
    })?;
    let key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|source| TlsError::Key {
            path: files.key.clone(),
            source,
        })?;

    // Unlike `CertifiedKey::from_der`, an undecidable match counts as a failure here: a
    // reload must not install a pair it could not check.
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(source) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            source,
        }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The leaf's serial number in hex, for logs: enough to tell two certificates apart.
fn serial_of(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return "none".to_string();
    };
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(cert) => cert
            .serial()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
        Err(_) => "unparsed".to_string(),
    }
}
