//! TLS for the register API and the token service (rustls, ring).

use std::sync::Arc;

use crate::config::TlsConfig;

/// The server TLS configuration (rustls, ring) from PEM files.
pub fn load(cfg: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = rustls_pemfile::certs(&mut std::fs::read(&cfg.cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::fs::read(&cfg.key)?.as_slice())?
        .ok_or_else(|| anyhow::anyhow!("no private key in {}", cfg.key))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
