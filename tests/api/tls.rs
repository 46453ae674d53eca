//! TLS: StartTLS to the XMPP server with a configured CA, HTTPS for the
//! register API and TLS for the token service.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

async fn jidgate_uses_starttls_with_the_configured_ca(kind: Kind) {
    let xmpp = XmppServer::start_tls(kind).await;
    let app = TestApp::spawn(&xmpp).await;

    app.register_device("SN-TLS-1", "device-pass-1", "").await;
    let login = app.login_device("SN-TLS-1", "device-pass-1").await;
    assert_eq!(login["result"], 0, "{login}");
    let session = xmpp
        .login(
            login["user_info"]["jid"].as_str().unwrap(),
            login["user_info"]["jid_pwd"].as_str().unwrap(),
        )
        .await
        .expect("login over StartTLS");
    session.close().await;

    // With another CA the server's certificate is not trusted.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = TestCa::new().write(other.path());
    let cfg = jidgate::Config::from_toml(&format!(
        "[xmpp]\nserver = \"127.0.0.1:{}\"\nsecurity = \"starttls\"\nca_file = {:?}\n\
         [secrets]\njid_key = \"{JID_KEY}\"",
        xmpp.port(),
        other_ca.display().to_string()
    ))
    .unwrap();
    let connector = jidgate::xmpp::Connector::from_config(&cfg.xmpp).unwrap();
    let jid = xmpp_parsers::jid::BareJid::new("admin@localhost").unwrap();
    let err = connector
        .login(&jid, ADMIN_PASSWORD, "x")
        .await
        .err()
        .expect("a certificate from another CA must fail");
    assert!(matches!(err, jidgate::xmpp::XmppError::Tls(_)), "{err}");

    // Plaintext is refused by this server: a plaintext jidgate cannot log in.
    let cfg = jidgate::Config::from_toml(&format!(
        "[xmpp]\nserver = \"127.0.0.1:{}\"\nsecurity = \"plaintext\"\n[secrets]\njid_key = \"{JID_KEY}\"",
        xmpp.port()
    ))
    .unwrap();
    let connector = jidgate::xmpp::Connector::from_config(&cfg.xmpp).unwrap();
    let jid = xmpp_parsers::jid::BareJid::new("admin@localhost").unwrap();
    assert!(connector.login(&jid, ADMIN_PASSWORD, "x").await.is_err());
}

#[tokio::test]
async fn the_register_api_and_the_token_service_speak_tls_when_configured() {
    let prosody = Prosody::start_tls().await;
    let dir = prosody.dir.path();
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml(format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            dir.join("cert.pem").display().to_string(),
            dir.join("key.pem").display().to_string()
        )),
    )
    .await;
    assert_eq!(app.scheme, "https");
    app.register_device("SN-HTTPS-1", "device-pass-1", "").await;
    let login = app.login_device("SN-HTTPS-1", "device-pass-1").await;
    assert_eq!(login["result"], 0, "{login}");

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new();
    assert!(
        plain
            .get(format!("http://{}/healthz", app.addr))
            .send()
            .await
            .is_err()
    );

    // The token service over TLS.
    let tls = {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(
            &mut std::fs::read(prosody.ca_file.as_ref().unwrap())
                .unwrap()
                .as_slice(),
        ) {
            roots.add(c.unwrap()).unwrap();
        }
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(app.token_addr)
        .await
        .unwrap();
    let stream = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (rd, mut wr) = tokio::io::split(stream);
    let mut lines = BufReader::new(rd).lines();
    wr.write_all(b"{\"seq\":1,\"cmd\":\"ping\"}\n")
        .await
        .unwrap();
    let reply: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(reply["seq"], 1);
    assert_eq!(reply["result"], 100, "hello first: {reply}");
}

on_each_server!(jidgate_uses_starttls_with_the_configured_ca,);
