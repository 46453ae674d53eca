//! A real ejabberd (Debian's package) for the tests, the second XMPP server
//! beside Prosody: started from `config/ejabberd.yml` and
//! `config/ejabberdctl.cfg` with `ejabberdctl ... foreground`, on a free c2s
//! port and a free Erlang distribution port, with its own spool (Mnesia),
//! logs and Erlang cookie in a temp dir.
//!
//! ejabberdctl runs the node only as root or as the user `ejabberd`; as
//! root the harness starts every ejabberdctl as `ejabberd` itself (the temp
//! dir is handed to that user), so that the whole process tree stays in one
//! process group that [`Ejabberd::kill`] can SIGKILL.
//!
//! **Reuse.** An ejabberd costs about 2.5 s of CPU to start (a Prosody
//! 0.1 s), so a plaintext instance is not killed when its test ends: it
//! goes back to a pool, and the next test that asks for one gets it after
//! a reset to a fresh server's state: every account but the admin deleted
//! with XEP-0133 delete-user (ejabberd drops an account's roster, offline
//! messages, archive and vCard with it), checked empty. An instance that
//! fails its reset is killed and a new one started. Instances with StartTLS
//! are never reused. Every ejabberd has a watchdog that kills it when the
//! test binary exits, however it exits, since pooled instances outlive
//! their tests.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jidgate::xmpp::admin;
use jidgate::xmpp::{IqRequest, Session};
use tempfile::TempDir;
use xmpp_parsers::disco::{DiscoItemsQuery, DiscoItemsResult};
use xmpp_parsers::jid::{BareJid, Jid};

use crate::helpers::{ADMIN_PASSWORD, DOMAIN, TestCa, free_port};
use crate::servers::xmpp_toml_for;

const INSTALL: &str = "apt-get install -y ejabberd";

/// Plaintext instances whose tests have ended, ready to be reset and used
/// again.
static POOL: Mutex<Vec<Instance>> = Mutex::new(Vec::new());

/// An ejabberd of our own (cheap to clone: every clone is the same server).
#[derive(Clone)]
pub struct Ejabberd {
    lease: Arc<Lease>,
}

/// A test's hold on an instance: when the last clone is dropped, the
/// instance goes back to the pool (or is killed).
struct Lease {
    instance: Option<Instance>,
}

struct Instance {
    port: u16,
    dist_port: u16,
    node: String,
    run_as: Option<(u32, u32)>,
    ca_file: Option<PathBuf>,
    /// Started from the pool's side of things: false once it failed a reset
    /// or speaks StartTLS.
    reusable: AtomicBool,
    running: Mutex<Option<Running>>,
    /// Last: removed once the process is gone.
    dir: TempDir,
}

/// One run of the node: ejabberdctl (leader of its process group) and the
/// watchdog that kills that group if the test binary dies.
struct Running {
    ejabberdctl: Child,
    watchdog: Child,
    _lifeline: ChildStdin,
}

impl Ejabberd {
    /// Plaintext on loopback (no StartTLS offered), with an admin account
    /// and no other: a reset instance from the pool, or a new one.
    pub async fn start() -> Ejabberd {
        loop {
            let Some(instance) = POOL.lock().unwrap().pop() else {
                break;
            };
            let ejabberd = Ejabberd::lease(instance);
            match ejabberd.reset().await {
                Ok(()) => return ejabberd,
                Err(e) => {
                    eprintln!(
                        "ejabberd: a pooled instance failed its reset ({e}); starting another"
                    );
                    ejabberd.instance().reusable.store(false, Ordering::SeqCst);
                }
            }
        }
        Self::start_new(false).await
    }

    /// StartTLS required, certificate from a fresh test CA (never pooled).
    pub async fn start_tls() -> Ejabberd {
        Self::start_new(true).await
    }

    fn lease(instance: Instance) -> Ejabberd {
        Ejabberd {
            lease: Arc::new(Lease {
                instance: Some(instance),
            }),
        }
    }

    fn instance(&self) -> &Instance {
        self.lease.instance.as_ref().expect("leased")
    }

    /// The c2s port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.instance().port
    }

    /// The instance's temp dir (configuration, TLS files, spool, logs).
    pub fn dir(&self) -> &Path {
        self.instance().dir.path()
    }

    /// The test CA's certificate, when the server speaks StartTLS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.instance().ca_file.as_deref()
    }

    async fn start_new(tls: bool) -> Ejabberd {
        let ctl = ejabberdctl();
        assert!(
            ctl.is_file(),
            "`ejabberdctl` is not installed: {INSTALL} (scripts/test.sh installs it)"
        );
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("jidgate-ejabberd-")
            .tempdir()
            .unwrap();
        let path = dir.path();
        std::fs::create_dir(path.join("logs")).unwrap();
        std::fs::create_dir(path.join("spool")).unwrap();
        let port = free_port();
        let (ca_file, certfiles) = if tls {
            let (ca, cert, key) = TestCa::new().write(path);
            let files = format!("[{:?}, {:?}]", cert.display(), key.display());
            (Some(ca), files)
        } else {
            (None, "[]".to_owned())
        };
        // ejabberd checks its own certificate against these roots.
        let roots = ca_file.as_ref().map_or_else(
            || "/etc/ssl/certs/ca-certificates.crt".to_owned(),
            |ca| ca.display().to_string(),
        );
        // The project's configuration, included without its own macros:
        // this file defines them for this run.
        // JIDGATE_TEST_EJABBERD_LOGLEVEL=debug to study a failing test.
        let loglevel = std::env::var("JIDGATE_TEST_EJABBERD_LOGLEVEL")
            .unwrap_or_else(|_| "warning".to_owned());
        let config = format!(
            "define_macro:\n  XMPP_DOMAIN: \"{DOMAIN}\"\n  ADMIN_JID: \"admin@{DOMAIN}\"\n  \
             C2S_IP: \"127.0.0.1\"\n  C2S_PORT: {port}\n  STARTTLS: {tls}\n  \
             STARTTLS_REQUIRED: {tls}\n  CERTFILES: {certfiles}\n  CA_FILE: {roots:?}\n  \
             LOGLEVEL: {loglevel}\n\
             include_config_file:\n  {:?}:\n    disallow: [define_macro]\n",
            repo().join("config/ejabberd.yml").display()
        );
        std::fs::write(path.join("ejabberd.yml"), config).unwrap();
        // Name resolution from /etc/hosts first, as the package's own inetrc.
        std::fs::write(path.join("inetrc"), "{lookup,[\"file\",\"native\"]}.\n").unwrap();
        // Our own cookie (HOME is the temp dir for every ejabberdctl call).
        let cookie = path.join(".erlang.cookie");
        let mut f = std::fs::File::create(&cookie).unwrap();
        f.write_all(hex::encode(jidgate::crypto::random_bytes::<16>()).as_bytes())
            .unwrap();
        drop(f);
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).unwrap();
        if let Some((uid, gid)) = run_as {
            chown_tree(path, uid, gid);
        }
        let ejabberd = Ejabberd::lease(Instance {
            port,
            dist_port: free_port(),
            node: format!("jidgate{port}@localhost"),
            run_as,
            ca_file,
            reusable: AtomicBool::new(!tls),
            running: Mutex::new(None),
            dir,
        });
        ejabberd.resume().await;
        // The node answers ejabberdctl a moment after its c2s port opens.
        let register = || ejabberd.ctl(&["register", "admin", DOMAIN, ADMIN_PASSWORD]);
        let mut outcome = register();
        for _ in 0..10 {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            outcome = register();
        }
        let out = outcome.unwrap_or_else(|e| panic!("{e}\n{}", ejabberd.console()));
        assert!(out.contains("successfully registered"), "{out}");
        ejabberd
    }

    /// `ejabberdctl` with this instance's configuration, node and cookie.
    fn command(&self) -> Command {
        let i = self.instance();
        let dir = i.dir.path();
        let mut c = Command::new(ejabberdctl());
        c.arg("--config-dir")
            .arg(dir)
            .arg("--ctl-config")
            .arg(repo().join("config/ejabberdctl.cfg"))
            .arg("--config")
            .arg(dir.join("ejabberd.yml"))
            .arg("--logs")
            .arg(dir.join("logs"))
            .arg("--spool")
            .arg(dir.join("spool"))
            .env("JIDGATE_EJABBERD_NODE", &i.node)
            .env("JIDGATE_EJABBERD_DIST_PORT", i.dist_port.to_string())
            .env("HOME", dir)
            .current_dir(dir)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = i.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// Runs an ejabberdctl command against the running node; its output,
    /// or an error with what it printed.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ejabberdctl: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "ejabberdctl {args:?} failed ({}): {text}",
                out.status
            ))
        }
    }

    /// Starts (again) and waits for the c2s port.
    pub async fn resume(&self) {
        let i = self.instance();
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.console_log())
            .unwrap();
        let ejabberdctl = self
            .command()
            .arg("foreground")
            .stdout(Stdio::from(console.try_clone().unwrap()))
            .stderr(Stdio::from(console))
            // Its own process group: bash, erl and beam die together.
            .process_group(0)
            .spawn()
            .expect("start ejabberd");
        // Reads its stdin until the test binary is gone (the write end is
        // ours), then kills the node's process group and removes the dir.
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg("read _; kill -KILL \"-$1\" 2>/dev/null; rm -rf -- \"$2\"")
            .arg("watchdog")
            .arg(ejabberdctl.id().to_string())
            .arg(i.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the watchdog");
        let lifeline = watchdog.stdin.take().unwrap();
        *i.running.lock().unwrap() = Some(Running {
            ejabberdctl,
            watchdog,
            _lifeline: lifeline,
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", i.port))
                .await
                .is_ok()
            {
                return;
            }
            let exited = i
                .running
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|r| r.ejabberdctl.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "ejabberd did not open its port ({exited:?}); its console:\n{}",
                self.console()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process with SIGKILL (a crash) and waits until it is gone.
    ///
    /// First it makes Mnesia write its transaction log to disk: ejabberd
    /// acknowledges writes (new accounts, roster changes) before Mnesia has
    /// written them (its log is appended asynchronously, its disc_only
    /// tables cache writes), and a SIGKILL loses the last second or two of
    /// them (measured here). Prosody's files survive a SIGKILL of the
    /// process, so without this the same fault test would be about two
    /// different crashes. docs/operations.md tells operators about it.
    pub fn kill(&self) {
        let i = self.instance();
        let running = i.running.lock().unwrap().take();
        if let Some(running) = running {
            if let Err(e) = self.rpc("mnesia", "sync_log", "[]") {
                eprintln!("ejabberd: syncing the Mnesia log before the kill failed: {e}");
            }
            running.kill();
        }
        i.wait_until_gone();
    }

    /// Calls `Module:Function(Args)` on the node over Erlang distribution
    /// (`Args` an Erlang list literal); the printed result.
    fn rpc(&self, module: &str, function: &str, args: &str) -> Result<String, String> {
        let i = self.instance();
        let name = hex::encode(jidgate::crypto::random_bytes::<6>());
        let mut c = Command::new("erl");
        c.args(["-sname", &format!("rpc{name}@localhost")])
            .args(["-hidden", "-noinput", "-dist_listen", "false"])
            .args(["-erl_epmd_port", &i.dist_port.to_string()])
            .arg("-eval")
            .arg(format!(
                "io:format(\"~p~n\", [rpc:call('{}', {module}, {function}, {args}, 10000)]), halt().",
                i.node
            ))
            .env("HOME", i.dir.path())
            .current_dir(i.dir.path())
            .stdin(Stdio::null());
        if let Some((uid, gid)) = i.run_as {
            c.uid(uid).gid(gid);
        }
        let out = c.output().map_err(|e| format!("cannot run erl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !text.starts_with("{badrpc") {
            Ok(text)
        } else {
            Err(format!(
                "{text}{}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The accounts ejabberd has (localparts, sorted): its own list of
    /// registered users (mod_configure's "all users" node, which only an
    /// admin may read), not what jidgate believes.
    ///
    /// Synchronous like Prosody's (which reads files): it runs on a thread
    /// of its own, so it also works inside a fault hook.
    pub fn accounts(&self) -> Vec<String> {
        let me = self.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let admin = me.admin().await?;
                    let users = list_users(&admin).await;
                    admin.close().await;
                    users
                })
        })
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("listing ejabberd's accounts failed: {e}"))
    }

    /// A session as the server's admin.
    async fn admin(&self) -> Result<Session, String> {
        let cfg = jidgate::Config::from_toml(&xmpp_toml_for(self.port(), self.ca_file()))
            .map_err(|e| e.to_string())?;
        let connector = jidgate::xmpp::Connector::from_config(&cfg.xmpp).unwrap();
        let admin = BareJid::new(&format!("admin@{DOMAIN}")).unwrap();
        connector
            .login(&admin, ADMIN_PASSWORD, "test-harness")
            .await
            .map_err(|e| e.to_string())
    }

    /// Back to a fresh server's state: only the admin account.
    async fn reset(&self) -> Result<(), String> {
        let admin = self.admin().await?;
        let users = list_users(&admin).await?;
        for user in users.iter().filter(|u| *u != "admin") {
            let jid = BareJid::new(&format!("{user}@{DOMAIN}")).map_err(|e| e.to_string())?;
            admin::delete_user(&admin.handle(), &jid)
                .await
                .map_err(|e| e.to_string())?;
        }
        let left = list_users(&admin).await?;
        admin.close().await;
        if left == ["admin"] {
            Ok(())
        } else {
            Err(format!("accounts left after the reset: {left:?}"))
        }
    }

    fn console_log(&self) -> PathBuf {
        self.dir().join("logs").join("console.log")
    }

    /// What ejabberd printed so far (the end of it).
    pub fn console(&self) -> String {
        let text = std::fs::read_to_string(self.console_log()).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[start..].to_owned()
    }
}

/// The localparts of every account of the domain, sorted, from the
/// admin-only disco node "all users" (more than 100 accounts come as
/// sub-nodes of ranges, which are followed).
async fn list_users(admin: &Session) -> Result<Vec<String>, String> {
    let mut nodes = vec!["all users".to_owned()];
    let mut users = Vec::new();
    while let Some(node) = nodes.pop() {
        let query = DiscoItemsQuery {
            node: Some(node),
            rsm: None,
        };
        let reply = admin
            .iq(
                Some(Jid::new(DOMAIN).unwrap()),
                IqRequest::Get(query.into()),
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or("empty disco#items result")?;
        let result = DiscoItemsResult::try_from(reply).map_err(|e| e.to_string())?;
        for item in result.items {
            match (item.node, item.jid.node()) {
                (Some(range), _) => nodes.push(range),
                (None, Some(local)) => users.push(local.to_string()),
                (None, None) => {}
            }
        }
    }
    users.sort();
    Ok(users)
}

impl Instance {
    /// Waits until nothing listens on the instance's ports any more (the
    /// beam process is not our child: ejabberdctl's bash is).
    fn wait_until_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while [self.port, self.dist_port]
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            assert!(Instant::now() < deadline, "ejabberd did not die");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Running {
    /// SIGKILL to ejabberdctl's process group (its bash, erl, beam and the
    /// port programs); then the watchdog is ended (before its process
    /// group id could be reused) and both are reaped.
    fn kill(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.ejabberdctl.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.ejabberdctl.kill();
        let _ = self.ejabberdctl.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(instance) = self.instance.take() else {
            return;
        };
        let running = instance.running.lock().unwrap().is_some();
        if running && instance.reusable.load(Ordering::SeqCst) {
            POOL.lock().unwrap().push(instance);
        }
        // Otherwise dropping the instance kills it and removes its dir.
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let running = self.running.get_mut().unwrap().take();
        if let Some(running) = running {
            running.kill();
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `ejabberdctl` from PATH, or where Debian puts it (/usr/sbin is not in
/// every user's PATH).
fn ejabberdctl() -> PathBuf {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|p| p.join("ejabberdctl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/ejabberdctl"))
}

/// Whom ejabberd runs as: as root, the package's user `ejabberd` (uid, gid);
/// as `ejabberd` itself, nobody else (`None`). ejabberdctl refuses anyone
/// else.
fn run_as() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("effective uid");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let ejabberd = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "ejabberd").then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    });
    let Some((uid, gid)) = ejabberd else {
        panic!("there is no user `ejabberd`: {INSTALL} (scripts/test.sh installs it)");
    };
    match euid {
        0 => Some((uid, gid)),
        e if e == uid => None,
        _ => panic!(
            "ejabberdctl runs ejabberd only as root or as the user `ejabberd`: run the \
             ejabberd tests as one of them (as root they start ejabberd as `ejabberd`)"
        ),
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}
