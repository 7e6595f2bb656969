//! TLS for both drivers (feature `rustls`): `wss://` clients and TLS
//! servers, on [rustls](https://docs.rs/rustls).
//!
//! - **The crypto provider is chosen here, explicitly:** rustls' `ring`
//!   provider ([`provider`]) is passed to every config this module builds
//!   (`ClientConfig::builder_with_provider`), so no process-wide default has
//!   to be installed, and none being installed panics nothing (the
//!   tokio-tungstenite #336/#339 trap). `ring` builds with a C compiler and
//!   has no other system dependency.
//! - **Clients** connect with a [`TlsConnector`]: Mozilla's roots from
//!   `webpki-roots` ([`TlsConnector::new`], what `connect("wss://…")` uses),
//!   the platform's roots (`TlsConnector::native_roots`, feature
//!   `rustls-native-roots`), roots of your own ([`TlsConnector::with_roots`],
//!   for example a test CA from [`load_certs`]), or a whole
//!   `rustls::ClientConfig` of your own ([`TlsConnector::from_config`]: client
//!   certificates, other settings). The server name sent (SNI) and checked
//!   is the URL's host; an IP literal is checked as an IP address.
//! - **Servers** accept with a [`TlsAcceptor`], from PEM files
//!   ([`TlsAcceptor::from_pem_files`]) or a `rustls::ServerConfig`.
//! - **ALPN:** configs built here offer and accept `http/1.1`
//!   ([`ALPN_HTTP_1_1`]), the protocol a WebSocket upgrade runs on; `h2`
//!   (RFC 8441) joins [`alpn_protocols`] once the crate speaks it.
//!
//! The drivers' functions: `blocking::connect_with_tls` and
//! `blocking::accept_tls`; `tokio::connect_with_tls` and `tokio::accept_tls`
//! (feature `tokio`). A TLS failure is `driver::Error::Tls`, naming the
//! rustls error (an unknown issuer, a name mismatch, an alert).
//!
//! ```no_run
//! use wsmachine::blocking;
//! use wsmachine::tls::{self, TlsConnector};
//! use wsmachine::{ClientRequest, Config};
//!
//! // Public roots, and a private CA besides.
//! let mut roots = tls::webpki_roots();
//! for ca in tls::load_certs("ca.pem")? {
//!     roots.add(ca)?;
//! }
//! let tls = TlsConnector::with_roots(roots)?;
//! let request = ClientRequest::from_url("wss://localhost:9443/")?;
//! let (mut ws, _response) = blocking::connect_with_tls(request, Config::default(), &tls)?;
//! ws.send("hello")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::string::String;
use std::sync::{Arc, OnceLock};
use std::vec;
use std::vec::Vec;

/// The rustls this crate was built with, so that configs passed to
/// [`TlsConnector::from_config`] and [`TlsAcceptor::new`] name the same
/// version.
pub use rustls;

/// The ALPN protocol id of HTTP/1.1, which the WebSocket upgrade runs on.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// The ALPN protocols the configs built here offer (client) and accept
/// (server), in order of preference: `http/1.1`. (`h2` joins once the crate
/// speaks RFC 8441.)
pub fn alpn_protocols() -> Vec<Vec<u8>> {
    vec![ALPN_HTTP_1_1.to_vec()]
}

/// The crypto provider of every config this module builds: rustls' `ring`
/// provider, its default cipher suites and key exchanges. Pass it to
/// `ClientConfig::builder_with_provider` / `ServerConfig::builder_with_provider`
/// when building a config of your own, so that nothing depends on a
/// process-wide default.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Mozilla's root certificates, as shipped by the `webpki-roots` crate: what
/// a browser trusts, and what [`TlsConnector::new`] uses.
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The platform's trusted roots (feature `rustls-native-roots`, through
/// `rustls-native-certs`: the system store on Linux (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` respected), the keychain on macOS, the Windows store).
/// Certificates the store holds but rustls cannot use are skipped; an
/// error only when no root at all could be loaded.
#[cfg(feature = "rustls-native-roots")]
pub fn native_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsConfigError::NoNativeRoots(found.errors));
    }
    Ok(roots)
}

/// Every certificate in a PEM file (`-----BEGIN CERTIFICATE-----`
/// sections; other sections are skipped), in order: a server's chain (its
/// own certificate first), or CA certificates to trust.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsConfigError::pem(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::pem(path, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8 `PRIVATE KEY`, PKCS#1
/// `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => TlsConfigError::pem(path, e),
    })
}

/// A client config trusting `roots`: the [`provider`], TLS 1.2 and 1.3, no
/// client certificate, ALPN [`alpn_protocols`]. Change what you need and
/// hand it to [`TlsConnector::from_config`].
pub fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn_protocols();
    Ok(config)
}

/// A server config presenting `chain` (the server's certificate first) with
/// `key`: the [`provider`], TLS 1.2 and 1.3, no client certificates asked
/// for, ALPN [`alpn_protocols`]. Fails if the key does not match the
/// certificate or rustls cannot use it.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn_protocols();
    Ok(config)
}

/// What a client needs to open `wss://` connections: a
/// `rustls::ClientConfig` (which roots to trust, client certificates, ALPN).
/// Cheap to clone; build one and use it for every connection.
///
/// ```no_run
/// use std::sync::Arc;
/// use wsmachine::tls::{self, TlsConnector, rustls};
///
/// // A client certificate: a config of one's own, on the crate's provider.
/// let chain = tls::load_certs("client.pem")?;
/// let key = tls::load_private_key("client.key")?;
/// let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
///     .with_safe_default_protocol_versions()?
///     .with_root_certificates(tls::webpki_roots())
///     .with_client_auth_cert(chain, key)?;
/// config.alpn_protocols = tls::alpn_protocols();
/// let tls = TlsConnector::from_config(Arc::new(config));
/// # let _ = tls;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Trusts Mozilla's roots ([`webpki_roots()`]); built once per process
    /// and shared. What `connect("wss://…")` uses.
    pub fn new() -> Result<Self, rustls::Error> {
        static DEFAULT: OnceLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| client_config(webpki_roots()).map(Arc::new))
            .clone()
            .map(|config| TlsConnector { config })
    }

    /// Trusts `roots` only (with [`webpki_roots()`] as a start to add to, or
    /// [`RootCertStore::empty`] for a private CA alone).
    pub fn with_roots(roots: RootCertStore) -> Result<Self, rustls::Error> {
        client_config(roots).map(|config| TlsConnector::from_config(Arc::new(config)))
    }

    /// Trusts the platform's roots ([`native_roots`], feature
    /// `rustls-native-roots`).
    #[cfg(feature = "rustls-native-roots")]
    pub fn native_roots() -> Result<Self, TlsConfigError> {
        TlsConnector::with_roots(native_roots()?).map_err(TlsConfigError::Rejected)
    }

    /// Uses `config` as it is (its roots, client certificate, ALPN: set
    /// `alpn_protocols` to [`alpn_protocols`] unless you want otherwise).
    /// Build it on [`provider`] (`builder_with_provider`) to stay
    /// independent of a process-wide provider.
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> Self {
        TlsConnector { config }
    }

    /// The config connections are made with.
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// A new client session for `host` (a DNS name or an IP literal,
    /// without brackets): the name sent (SNI) and checked.
    pub(crate) fn client(&self, host: &str) -> Result<rustls::ClientConnection, rustls::Error> {
        rustls::ClientConnection::new(self.config.clone(), server_name(host)?)
    }
}

/// What a server needs to accept TLS connections: a `rustls::ServerConfig`
/// (its certificate chain and key, ALPN). Cheap to clone.
///
/// ```no_run
/// use wsmachine::blocking::{self, Decision};
/// use wsmachine::tls::TlsAcceptor;
/// use wsmachine::{Accept, Config};
///
/// let tls = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:9443")?;
/// let (tcp, _) = listener.accept()?;
/// let mut ws = blocking::accept_tls(tcp, &tls, Config::default(), |_| Decision::Accept(Accept::new()))?;
/// ws.send("welcome")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Uses `config` as it is.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        TlsAcceptor { config }
    }

    /// Presents the certificate chain in the PEM file `chain` (the
    /// server's certificate first, then intermediates) with the private key
    /// in the PEM file `key`, through [`server_config`].
    pub fn from_pem_files(chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let chain = load_certs(chain)?;
        let key = load_private_key(key)?;
        let config = server_config(chain, key).map_err(TlsConfigError::Rejected)?;
        Ok(TlsAcceptor::new(Arc::new(config)))
    }

    /// The config connections are accepted with.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }

    /// A new server session.
    pub(crate) fn server(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        rustls::ServerConnection::new(self.config.clone())
    }
}

/// The name a client sends and checks: a DNS name, or an IP address for an
/// IP literal.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, rustls::Error> {
    ServerName::try_from(String::from(host))
        .map_err(|_| rustls::Error::General(std::format!("{host:?} is not a valid TLS server name")))
}

/// What can go wrong loading certificates, keys and roots.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is not valid PEM.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: pem::Error,
    },
    /// The file holds no `CERTIFICATE` section.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key section.
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the config: the key does not match the certificate,
    /// or is of a kind it cannot use.
    Rejected(rustls::Error),
    /// No usable root was found in the platform's store (feature
    /// `rustls-native-roots`); what went wrong looking.
    #[cfg(feature = "rustls-native-roots")]
    NoNativeRoots(Vec<rustls_native_certs::Error>),
}

impl TlsConfigError {
    fn pem(path: &Path, error: pem::Error) -> Self {
        let path = path.to_path_buf();
        match error {
            pem::Error::Io(error) => TlsConfigError::Read { path, error },
            error => TlsConfigError::Pem { path, error },
        }
    }
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            TlsConfigError::Pem { path, error } => write!(f, "{}: not valid PEM: {error}", path.display()),
            TlsConfigError::NoCertificate { path } => write!(f, "{}: no CERTIFICATE in it", path.display()),
            TlsConfigError::NoPrivateKey { path } => write!(f, "{}: no private key in it", path.display()),
            TlsConfigError::Rejected(e) => write!(f, "TLS config refused: {e}"),
            #[cfg(feature = "rustls-native-roots")]
            TlsConfigError::NoNativeRoots(errors) => {
                f.write_str("no usable root certificate in the platform's store")?;
                if let Some(first) = errors.first() {
                    write!(f, ": {first}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Read { error, .. } => Some(error),
            TlsConfigError::Pem { error, .. } => Some(error),
            TlsConfigError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}
