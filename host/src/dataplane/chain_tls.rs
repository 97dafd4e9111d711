//! rustls client configuration for the data plane (the management API and Medusa): the
//! server's chain is checked against the datacenter's CA, its name optionally not —
//! certificates are issued per datacenter, not per pod IP, and pods get new IPs.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// What the material is called in error messages (the Secret keys users know).
pub(crate) struct Names {
    pub ca: &'static str,
    pub cert: &'static str,
    pub key: &'static str,
}

/// Verifies the chain against the CA and accepts a certificate that does not name the
/// address dialled.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // WebPkiServerVerifier checks the name only after the chain verified, so a name
        // mismatch means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A client configuration trusting `ca_pem`, presenting `identity` (certificate chain and
/// key PEM) when given. The error never quotes key material.
pub(crate) fn client_config(
    ca_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
    verify_hostname: bool,
    names: &Names,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("{} PEM: {e}", names.ca))?;
        roots.add(cert).map_err(|e| format!("{}: {e}", names.ca))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in it", names.ca));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| format!("{}: {e}", names.ca))?;
    let verifier: Arc<dyn ServerCertVerifier> = if verify_hostname {
        webpki
    } else {
        Arc::new(ChainOnly(webpki))
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{} PEM: {e}", names.cert))?;
            if chain.is_empty() {
                return Err(format!("{}: no certificate in it", names.cert));
            }
            // The parse error of a key could quote it: say only that it is unusable.
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| format!("{} holds no usable private key", names.key))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{} and {}: {e}", names.cert, names.key))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}
