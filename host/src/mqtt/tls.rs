//! TLS for the MQTT broker: the server certificate, device certificates checked against a CA,
//! and the thing a verified device certificate names.
//!
//! A device that presents a certificate signed by the configured CA is that certificate's
//! thing: the subject's common name is the thing name, and the client id must equal it. The
//! device then needs no password. A device without a certificate falls back to user name and
//! password over the encrypted connection, unless client certificates are required.
//!
//! [`generate`] writes a CA, a server certificate and device certificates for `vigil
//! mqtt-certs`, so a fleet can try TLS without an outside PKI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

/// Paths of the TLS material of the broker.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The server's certificate chain, PEM.
    pub certificate: PathBuf,
    /// The server's private key, PEM.
    pub key: PathBuf,
    /// CA certificates that sign device certificates, PEM; none turns device certificates off.
    pub client_ca: Option<PathBuf>,
    /// Refuse TLS clients that present no certificate.
    pub require_client_certificate: bool,
}

/// Builds the rustls server configuration from the files of `settings`.
pub fn server_config(settings: &TlsSettings) -> anyhow::Result<Arc<ServerConfig>> {
    // FIXME: ring offers no post-quantum key exchange; rustls has it with aws-lc-rs, whose
    // build needs cmake and adds minutes to a cold build.
    #[expect(deprecated, reason = "ring is the provider that builds without cmake")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(&settings.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).with_context(|| {
        format!(
            "failed to read a PEM private key from `{}`",
            settings.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("failed to choose TLS protocol versions")?;
    let builder = match &settings.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca)? {
                roots.add(certificate).with_context(|| {
                    format!("failed to use a certificate of `{}` as a CA", ca.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if settings.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .context("failed to set up device certificate checks")?,
            )
        }
        None if settings.require_client_certificate => {
            bail!("--mqtt-require-client-cert needs --mqtt-tls-client-ca to check certificates")
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "failed to pair the certificate `{}` with the key `{}`; do they belong together?",
            settings.certificate.display(),
            settings.key.display()
        )
    })?;
    Ok(Arc::new(config))
}

/// Reads every certificate of a PEM file; an empty file is an error.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("failed to read PEM certificates from `{}`", path.display()))?;
    if certificates.is_empty() {
        bail!(
            "`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        );
    }
    Ok(certificates)
}

/// The thing a verified device certificate names: its subject's first common name.
pub fn thing_of_certificate(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let common_name = parsed.subject().iter_common_name().next()?;
    common_name.as_str().ok().map(str::to_owned)
}

/// File names [`generate`] writes in its folder.
pub mod files {
    /// The CA certificate devices and the broker trust.
    pub const CA_CERTIFICATE: &str = "ca.pem";
    /// The CA's private key; keep it out of devices.
    pub const CA_KEY: &str = "ca.key";
    /// The broker's certificate.
    pub const SERVER_CERTIFICATE: &str = "server.pem";
    /// The broker's private key.
    pub const SERVER_KEY: &str = "server.key";
}

/// What [`generate`] wrote.
#[derive(Debug, Default)]
pub struct Generated {
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// Files that existed and were reused.
    pub reused: Vec<PathBuf>,
}

/// Writes a CA, a server certificate for `hosts` and one certificate per thing into `dir`.
///
/// An existing CA and server certificate are reused, so devices can be added later; an
/// existing device certificate is never overwritten.
pub fn generate(dir: &Path, hosts: &[String], things: &[String]) -> anyhow::Result<Generated> {
    things
        .iter()
        .try_for_each(|thing| check_thing_name(thing))?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create the folder `{}`", dir.display()))?;
    let mut generated = Generated::default();
    let ca = load_or_create_ca(dir, &mut generated)?;
    let server_certificate = dir.join(files::SERVER_CERTIFICATE);
    if server_certificate.exists() {
        generated.reused.push(server_certificate);
    } else {
        let mut params = leaf_params("vigil-mqtt-broker", ExtendedKeyUsagePurpose::ServerAuth)?;
        params.subject_alt_names = server_names(hosts)?;
        write_leaf(dir, "server", params, &ca, &mut generated)?;
    }
    for thing in things {
        if dir.join(format!("{thing}.pem")).exists() {
            generated.reused.push(dir.join(format!("{thing}.pem")));
            continue;
        }
        let params = leaf_params(thing, ExtendedKeyUsagePurpose::ClientAuth)?;
        write_leaf(dir, thing, params, &ca, &mut generated)?;
    }
    Ok(generated)
}

fn load_or_create_ca(
    dir: &Path,
    generated: &mut Generated,
) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let certificate_path = dir.join(files::CA_CERTIFICATE);
    let key_path = dir.join(files::CA_KEY);
    if certificate_path.exists() {
        let certificate = read_text(&certificate_path)?;
        let key = KeyPair::from_pem(&read_text(&key_path)?)
            .with_context(|| format!("failed to read the CA key `{}`", key_path.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&certificate, key).with_context(|| {
            format!(
                "failed to read the CA certificate `{}`",
                certificate_path.display()
            )
        })?;
        generated.reused.push(certificate_path);
        return Ok(issuer);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Vigil device CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().context("failed to generate the CA key")?;
    let certificate = params
        .self_signed(&key)
        .context("failed to sign the CA certificate")?;
    write_private(&key_path, &key.serialize_pem(), generated)?;
    write_file(&certificate_path, &certificate.pem(), generated)?;
    Ok(Issuer::new(params, key))
}

fn leaf_params(
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .context("failed to start certificate parameters")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Subject alternative names of the server certificate: loopback plus `hosts`.
fn server_names(hosts: &[String]) -> anyhow::Result<Vec<SanType>> {
    let mut names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ];
    for host in hosts {
        let name =
            match host.parse::<std::net::IpAddr>() {
                Ok(address) => SanType::IpAddress(address),
                Err(_) => SanType::DnsName(host.clone().try_into().with_context(|| {
                    format!("`{host}` is neither an IP address nor a DNS name")
                })?),
            };
        names.push(name);
    }
    Ok(names)
}

fn write_leaf(
    dir: &Path,
    stem: &str,
    params: CertificateParams,
    ca: &Issuer<'_, KeyPair>,
    generated: &mut Generated,
) -> anyhow::Result<()> {
    let key =
        KeyPair::generate().with_context(|| format!("failed to generate a key for `{stem}`"))?;
    let certificate = params
        .signed_by(&key, ca)
        .with_context(|| format!("failed to sign the certificate of `{stem}`"))?;
    write_private(
        &dir.join(format!("{stem}.key")),
        &key.serialize_pem(),
        generated,
    )?;
    write_file(
        &dir.join(format!("{stem}.pem")),
        &certificate.pem(),
        generated,
    )
}

/// Device certificates are named after their thing, so the name must be a plain AWS thing name
/// (`[a-zA-Z0-9:_-]`), which is also a safe file name.
fn check_thing_name(thing: &str) -> anyhow::Result<()> {
    let problems = vigil_core::validate::validate_resource_name(thing, "thing");
    if let Some(problem) = problems.first() {
        bail!("`{thing}` cannot be a thing name: {problem}");
    }
    Ok(())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read `{}`", path.display()))
}

fn write_file(path: &Path, text: &str, generated: &mut Generated) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
    generated.written.push(path.to_owned());
    Ok(())
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, text: &str, generated: &mut Generated) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create `{}`", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    generated.written.push(path.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_device_certificate_names_its_thing() {
        let dir = scratch("names");
        generate(&dir, &[], &["door-lock-7".to_owned()]).unwrap();
        let certificate = CertificateDer::from_pem_file(dir.join("door-lock-7.pem")).unwrap();
        assert_eq!(
            thing_of_certificate(&certificate).as_deref(),
            Some("door-lock-7")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn generated_files_build_a_server_configuration() {
        let dir = scratch("config");
        generate(&dir, &["broker.example".to_owned()], &[]).unwrap();
        let settings = TlsSettings {
            certificate: dir.join(files::SERVER_CERTIFICATE),
            key: dir.join("server.key"),
            client_ca: Some(dir.join(files::CA_CERTIFICATE)),
            require_client_certificate: true,
        };
        assert!(server_config(&settings).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_run_reuses_the_ca_and_adds_only_new_devices() {
        let dir = scratch("reuse");
        let first = generate(&dir, &[], &["a".to_owned()]).unwrap();
        assert_eq!(first.written.len(), 6);
        let ca = std::fs::read(dir.join(files::CA_CERTIFICATE)).unwrap();
        let second = generate(&dir, &[], &["a".to_owned(), "b".to_owned()]).unwrap();
        let written: Vec<_> = second
            .written
            .iter()
            .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(written, ["b.key", "b.pem"]);
        assert_eq!(std::fs::read(dir.join(files::CA_CERTIFICATE)).unwrap(), ca);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = scratch("mismatch");
        generate(&dir, &[], &["a".to_owned()]).unwrap();
        let settings = TlsSettings {
            certificate: dir.join(files::SERVER_CERTIFICATE),
            key: dir.join("a.key"),
            client_ca: None,
            require_client_certificate: false,
        };
        let error = format!("{:#}", server_config(&settings).unwrap_err());
        assert!(error.contains("do they belong together"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
