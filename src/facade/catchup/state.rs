//! A facade session's catch-up state, held by its `Live` (the catch-up
//! itself is the module above): what the catch-ups of the session claim,
//! whether one is pushing or the session fell behind, and the account's
//! cursor with its writer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use xmpp_parsers::jid::BareJid;

use crate::clock::now;
use crate::crypto::random_token;
use crate::db::Db;
use crate::db::facade as store;

/// A session's catch-up state.
pub struct CatchUp {
    /// Names this session in `facade_cursor.owner`.
    pub(super) owner: String,
    /// Archive ids a catch-up of this session pushes (or will): the server
    /// delivering one of them again is not pushed twice.
    pub(super) claimed: Mutex<HashSet<String>>,
    /// Catch-ups pushing now: while one does, only its pushes move the
    /// cursor.
    pub(super) running: AtomicUsize,
    /// Chat messages were left to the archive while the push queue was
    /// full (`fall_behind`).
    pub(super) behind: AtomicBool,
    /// A task runs `fall_behind`'s catch-up.
    pub(super) catching: AtomicBool,
    /// A catch-up of this session failed: the next login must catch up.
    pub(super) unsure: AtomicBool,
    /// A sweep after login runs (`catchup::sweep`): archived messages
    /// pushed live are noted in `seen`, and the session cannot end clean.
    pub(super) sweeping: AtomicBool,
    /// Archived messages pushed live while a sweep runs, by archive id and
    /// by sender and id.
    pub(super) seen: Mutex<HashSet<String>>,
    /// The newest archived message acknowledged while a catch-up or sweep
    /// held the cursor (its push did not move it).
    pub(super) held: Mutex<Option<String>>,
    pub(super) cursor: Arc<Mutex<Cursor>>,
    /// Where the cursor is written, and whose it is.
    db: Db,
    account_id: i64,
}

#[derive(Default)]
pub(super) struct Cursor {
    /// Read from the database (at the first login of this session).
    pub(super) loaded: bool,
    /// Where the cursor should be (an archive id; `None`: before the
    /// oldest).
    pub(super) want: Option<String>,
    /// What the database holds.
    pub(super) stored: Option<String>,
    /// A task is writing `want` to the database.
    writing: bool,
}

/// How often a session writes its cursor at most.
const WRITE_EVERY: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A message by its sender and id (a sender's ids cannot shadow
/// another's).
pub(super) fn sent_key(from: &BareJid, msgid: &str) -> String {
    format!("{from}\n{msgid}")
}

impl CatchUp {
    /// The state of a new session of account `account_id`.
    pub fn new(db: Db, account_id: i64) -> CatchUp {
        CatchUp {
            owner: random_token::<12>(),
            claimed: Mutex::default(),
            running: AtomicUsize::new(0),
            behind: AtomicBool::new(false),
            catching: AtomicBool::new(false),
            unsure: AtomicBool::new(false),
            sweeping: AtomicBool::new(false),
            seen: Mutex::default(),
            held: Mutex::default(),
            cursor: Arc::default(),
            db,
            account_id,
        }
    }

    /// The server delivered message `msgid` from `from`, archived as
    /// `archive_id`: whether a catch-up pushes it already. By either
    /// name: ejabberd gives a message it routes again (a stream that
    /// ended unacknowledged) a new stanza-id.
    pub fn claimed(&self, archive_id: &str, from: &BareJid, msgid: &str) -> bool {
        let claimed = lock(&self.claimed);
        claimed.contains(archive_id) || claimed.contains(&sent_key(from, msgid))
    }

    /// The server delivered message `msgid` from `from`, archived as
    /// `archive_id`, and it is pushed: a sweep running now does not push
    /// it again.
    pub fn pushed_live(&self, archive_id: &str, from: &BareJid, msgid: &str) {
        if self.sweeping.load(Ordering::SeqCst) {
            let mut seen = lock(&self.seen);
            seen.insert(archive_id.to_owned());
            seen.insert(sent_key(from, msgid));
        }
    }

    /// Whether acknowledging a push of an archived message from the
    /// server should move the cursor: not while a catch-up is pushing (its
    /// own pushes move it then).
    pub fn moves_cursor(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }

    /// The phone acknowledged the push of archived message `archive_id`
    /// (the newest of an acknowledgement).
    pub fn acknowledged(&self, archive_id: String) {
        lock(&self.cursor).want = Some(archive_id);
        self.write();
    }

    /// The phone acknowledged the push of archived message `archive_id`,
    /// which did not move the cursor (a catch-up or sweep held it).
    pub fn held_back(&self, archive_id: String) {
        *lock(&self.held) = Some(archive_id);
    }

    /// Writes the wanted cursor, one writer at a time (acknowledgements
    /// come often; the newest wins).
    fn write(&self) {
        {
            let mut c = lock(&self.cursor);
            if c.writing || !c.loaded {
                return;
            }
            c.writing = true;
        }
        let (cursor, db, account_id) = (self.cursor.clone(), self.db.clone(), self.account_id);
        tokio::spawn(async move {
            loop {
                // At most one write a second: a crash costs duplicates only.
                tokio::time::sleep(WRITE_EVERY).await;
                let next = {
                    let mut c = lock(&cursor);
                    if c.want == c.stored {
                        c.writing = false;
                        return;
                    }
                    c.want.clone()
                };
                let Some(id) = next.clone() else {
                    lock(&cursor).writing = false;
                    return;
                };
                if let Err(e) = store::set_cursor(&db, account_id, &id, now()).await {
                    tracing::warn!(error = %e, "facade catch-up cursor not kept");
                    lock(&cursor).writing = false;
                    return;
                }
                lock(&cursor).stored = next;
            }
        });
    }
}
