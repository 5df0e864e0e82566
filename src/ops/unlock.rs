//! `ferry force-unlock PLAN TOKEN`: frees the run's lease in PostgreSQL.
//!
//! Owns: the command's checks and message. Does not own: the lease
//! (`journal::pg::force_unlock`). Only the current token frees a lease (a
//! token from an old message frees nothing); the token itself is kept, so
//! the next holder gets a greater one and every write of the old holder is
//! refused. A file journal has no such command: its lock dies with its
//! holder.

use std::path::PathBuf;

use super::Error;
use crate::journal::pg::{self, Holder};

/// What `ferry force-unlock` was asked to do.
pub struct UnlockOptions {
    pub plan: PathBuf,
    pub journal: Option<PathBuf>,
    pub token: i64,
}

/// Frees the lease; returns who held it.
pub fn force_unlock(opts: &UnlockOptions) -> Result<Option<Holder>, Error> {
    let loaded = super::apply::load(&opts.plan)?;
    let w = super::journal::locate(&loaded, opts.journal.as_deref(), super::journal::Kind::Run)?;
    let super::journal::Where::Pg { loc, run } = &w else {
        return Err(Error::Usage(
            "this plan's journal is a file, whose lock is freed by the kernel when its apply \
             dies: there is nothing to force-unlock. force-unlock is for a journal in \
             PostgreSQL (`journal.postgres` in the plan, or --journal postgres://…)"
                .to_string(),
        ));
    };
    let db = super::journal::connect(loc)?;
    pg::force_unlock(&db, run, opts.token).map_err(super::journal::pg_error)
}
