//! The TLS client settings every outbound connection that is not HTTP shares (syslog over TLS,
//! SMTP with implicit TLS): certificates verified against the operator's CA file, or the
//! system's roots.

use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// TLS trusting the PEM certificates in `ca_pem` only, or the system's roots.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<ClientConfig, String> {
    match ca_pem {
        Some(pem) => {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA file holds an unusable certificate: {e}"))?;
            }
            Ok(ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth())
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt;
            ClientConfig::with_platform_verifier()
                .map_err(|e| format!("cannot load the system's certificate roots: {e}"))
        }
    }
}
