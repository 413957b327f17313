//! What a TLS failure means, in words a user can act on: rustls says `invalid peer
//! certificate: UnknownIssuer`, which names neither the certificate's problem in plain
//! words nor the fix (`SSL_CERT_FILE` for a private certificate authority).

/// The reason for a failed request when the TLS library refused the connection (ureq
/// hands its errors over as I/O errors holding rustls's); None for any other I/O error.
pub fn reason(e: &std::io::Error) -> Option<String> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(describe(tls))
}

/// `TLS: …` for a rustls error; a refused certificate says why in plain words, and nothing
/// is Rust's debug text (`Other(OtherError(CaUsedAsEndEntity))`).
pub fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let c = match e {
        rustls::Error::InvalidCertificate(c) => c,
        // What a plain HTTP server's answer to a TLS hello looks like.
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            return "TLS: the server does not speak TLS on this port (an http:// URL?)".to_string();
        }
        rustls::Error::AlertReceived(alert) => {
            return format!(
                "TLS: the server refused the connection (its alert: {})",
                words(&format!("{alert:?}"))
            );
        }
        rustls::Error::General(m) => return format!("TLS: {m}"),
        other => return format!("TLS: the connection failed ({})", words(&format!("{other:?}"))),
    };
    let why = match c {
        C::UnknownIssuer => match unreadable_roots() {
            Some(problem) => format!("is not trusted: unknown issuer ({problem}; it replaces the system's trusted roots)"),
            None => "is not trusted: unknown issuer (no certificate authority among the trusted roots signed it; for a private authority, name its certificate in SSL_CERT_FILE)".to_string(),
        },
        C::NotValidForName => "is not valid for the host name of the URL".to_string(),
        C::NotValidForNameContext { .. } => format!("is not valid for the host name of the URL ({c})"),
        C::Expired => "has expired".to_string(),
        C::ExpiredContext { .. } => format!("has expired ({c})"),
        C::NotValidYet => "is not valid yet (is the clock right?)".to_string(),
        C::NotValidYetContext { .. } => format!("is not valid yet ({c}; is the clock right?)"),
        C::Revoked => "has been revoked".to_string(),
        C::BadSignature => {
            "has a bad signature (not made by the trusted certificate authority it names)".to_string()
        }
        // webpki's errors, which rustls passes on as they are: their names are all there is.
        C::Other(other) => match other.to_string().as_str() {
            "CaUsedAsEndEntity" => "is a certificate authority's own certificate, not one made for the \
                server (a self-signed authority certificate served as the server's?): give the server a \
                certificate signed by that authority, and name the authority's certificate in SSL_CERT_FILE"
                .to_string(),
            "EndEntityUsedAsCa" => {
                "chain has a server's certificate where an authority's should be (the server sends a wrong chain)"
                    .to_string()
            }
            name => format!("was refused ({})", words(name)),
        },
        other => format!("was refused ({})", words(&format!("{other:?}"))),
    };
    format!("TLS: the server's certificate {why}")
}

/// `SSL_CERT_FILE` or `SSL_CERT_DIR` naming what cannot be read (a typo, a bundle not
/// copied into the image): the platform's roots then replace none of them, silently, and
/// a certificate its authority signed is refused as of an unknown issuer.
fn unreadable_roots() -> Option<String> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    if let Some(file) = var("SSL_CERT_FILE") {
        let problem = match std::fs::metadata(&file) {
            Err(e) => Some(crate::io::io_reason(&e)),
            Ok(m) if m.is_dir() => Some("a directory: SSL_CERT_DIR names directories".to_string()),
            Ok(_) => std::fs::File::open(&file).err().map(|e| crate::io::io_reason(&e)),
        };
        if let Some(problem) = problem {
            return Some(format!(
                "SSL_CERT_FILE names {}, which cannot be read ({problem})",
                crate::report::ticked(&file)
            ));
        }
    }
    let dirs = var("SSL_CERT_DIR")?;
    let unread: Vec<String> = std::env::split_paths(&dirs)
        .filter_map(|d| {
            std::fs::read_dir(&d)
                .err()
                .map(|e| format!("{} ({})", crate::report::ticked(&d), crate::io::io_reason(&e)))
        })
        .collect();
    (!unread.is_empty()).then(|| format!("SSL_CERT_DIR names {}, which cannot be read", unread.join(", ")))
}

/// A Rust debug name in words: the innermost name of `Other(OtherError(CaUsedAsEndEntity))`,
/// split where its words start: "ca used as end entity".
fn words(debug: &str) -> String {
    let name = debug.split(|c: char| !c.is_ascii_alphanumeric()).rfind(|w| !w.is_empty()).unwrap_or(debug);
    let mut out = String::new();
    for (i, ch) in name.char_indices() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_certificates_are_named_in_words() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let unknown = reason(&io(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)));
        let unknown = unknown.expect("a TLS error");
        assert!(unknown.contains("certificate") && unknown.contains("unknown issuer"), "{unknown}");
        assert!(unknown.contains("SSL_CERT_FILE"), "{unknown}");
        let expired = describe(&rustls::Error::InvalidCertificate(rustls::CertificateError::Expired));
        assert_eq!(expired, "TLS: the server's certificate has expired");
        assert_eq!(reason(&std::io::Error::other("not TLS")), None);
        let unhandled = describe(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnhandledCriticalExtension,
        ));
        assert_eq!(unhandled, "TLS: the server's certificate was refused (unhandled critical extension)");
        let alert = describe(&rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure));
        assert_eq!(alert, "TLS: the server refused the connection (its alert: handshake failure)");
        assert_eq!(words("Other(OtherError(CaUsedAsEndEntity))"), "ca used as end entity");
    }
}
