//! Unread counts (`session.start`'s `unread`), written beside delivery
//! but in order per account: a `message.mark_read` waits for the counts
//! of the messages pushed before it, so a count written late cannot undo
//! the mark. Accounts are spread over a few writer tasks (by id), each
//! writing its operations one after the other.

use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

use crate::clock::now;
use crate::db::Db;
use crate::db::facade as store;
use crate::error::Error;

/// Writer tasks: accounts on different ones write side by side.
const WRITERS: usize = 8;

enum Op {
    /// One more unread message `msgid` from `peer` (once per msgid).
    Add {
        account_id: i64,
        peer: String,
        msgid: String,
    },
    /// Everything from `peer` is read.
    Clear {
        account_id: i64,
        peer: String,
        done: oneshot::Sender<Result<(), Error>>,
    },
}

/// The facade's unread-count writers (one set per instance).
pub struct Unread {
    db: Db,
    /// Started at first use, inside the runtime.
    writers: OnceLock<Vec<mpsc::UnboundedSender<Op>>>,
}

impl Unread {
    pub fn new(db: Db) -> Unread {
        Unread {
            db,
            writers: OnceLock::new(),
        }
    }

    fn writer(&self, account_id: i64) -> &mpsc::UnboundedSender<Op> {
        let writers = self.writers.get_or_init(|| {
            (0..WRITERS)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(write(self.db.clone(), rx));
                    tx
                })
                .collect()
        });
        &writers[account_id.rem_euclid(WRITERS as i64) as usize]
    }

    /// Counts message `msgid` from `peer` as unread, unless counted
    /// already; does not wait.
    pub fn add(&self, account_id: i64, peer: &str, msgid: &str) {
        let op = Op::Add {
            account_id,
            peer: peer.to_owned(),
            msgid: msgid.to_owned(),
        };
        // The writers live as long as the facade.
        let _ = self.writer(account_id).send(op);
    }

    /// Clears `peer`'s count, after every count added before.
    pub async fn clear(&self, account_id: i64, peer: &str) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        let op = Op::Clear {
            account_id,
            peer: peer.to_owned(),
            done,
        };
        if self.writer(account_id).send(op).is_err() {
            return Err(Error::Internal(anyhow::anyhow!("unread writer gone")));
        }
        wait.await
            .unwrap_or_else(|_| Err(Error::Internal(anyhow::anyhow!("unread writer gone"))))
    }
}

async fn write(db: Db, mut ops: mpsc::UnboundedReceiver<Op>) {
    while let Some(op) = ops.recv().await {
        match op {
            Op::Add {
                account_id,
                peer,
                msgid,
            } => {
                if let Err(e) = store::add_unread(&db, account_id, &peer, &msgid, now()).await {
                    tracing::warn!(error = %e, "unread count not kept");
                }
            }
            Op::Clear {
                account_id,
                peer,
                done,
            } => {
                let _ = done.send(store::clear_unread(&db, account_id, &peer, now()).await);
            }
        }
    }
}
