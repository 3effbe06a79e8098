//! TLS on mcpd's listener, with rustls: a certificate chain and key from PEM files, and
//! optionally a CA whose client certificates authenticate their holders (the certificate's
//! common name is the user). SIGHUP reloads all three files; connections already open keep the
//! configuration they were accepted with, the next one gets the new one. A reload that fails
//! keeps the previous configuration and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Where the listener's certificate, key and (optional) client CA are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The listener's TLS configuration, swapped whole on reload.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

/// The user a verified client certificate names: put into each request of its connection.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    pub common_name: String,
    /// When the certificate became valid (its `notBefore`), in seconds since the epoch: a
    /// certificate older than a re-created user's creation was made for the one before.
    pub not_before: i64,
}

impl Tls {
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Tls>> {
        let config = server_config(&files)?;
        Ok(Arc::new(Tls { files, current: RwLock::new(Arc::new(config)) }))
    }

    /// Reads the files again; on any error the configuration in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        Ok(())
    }

    /// An acceptor for the next connection, with the configuration current now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        tokio_rustls::TlsAcceptor::from(config)
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

fn certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("the {what} {} is not PEM", path.display()))?;
    if certificates.is_empty() {
        bail!("the {what} {} holds no certificate", path.display());
    }
    Ok(certificates)
}

fn server_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    let chain = certificates(&files.certificate, "TLS certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key, "TLS key")?)
        .with_context(|| format!("the TLS key {} holds no PEM private key", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates(path, "client CA")? {
                roots.add(certificate).with_context(|| format!("the client CA {} is not usable", path.display()))?;
            }
            // A client without a certificate may still use a bearer token.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("the client CA {} is not usable", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!("the TLS key {} does not go with the certificate {}", files.key.display(), files.certificate.display())
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The user a (verified) client certificate names: its one common name, which must be a
/// resource name (a certificate with several common names, or one that is no user name, e.g.
/// holding NUL, names nobody: its requests need a token).
pub fn client_certificate(certificate: &CertificateDer<'_>) -> Option<ClientCertificate> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let mut names = parsed.subject().iter_common_name();
    let name = names.next()?.as_str().ok()?;
    if names.next().is_some() {
        tracing::info!("a client certificate with several common names names nobody");
        return None;
    }
    let name = domain::ResourceName::parse(name).ok()?;
    let not_before = parsed.validity().not_before.timestamp();
    Some(ClientCertificate { common_name: name.as_str().to_owned(), not_before })
}
