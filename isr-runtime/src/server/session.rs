//! The dashboard's operator sessions: random ids held by the server, each with an expiry.
//!
//! Login ([`Sessions::open`]) makes a 256-bit id from the OS's random source; the cookie
//! carries only that id, never the token or anything derived from it. The server keeps a hash
//! of each id with its expiry: a session ends at its expiry, at logout ([`Sessions::close`]), or
//! when the process ends (a token change needs a restart, so it ends every session). At most
//! [`MAX_SESSIONS`] are held: a login beyond that ends the session closest to its expiry.
//! A session also holds the dashboard's one pending notice (shown once, then gone), so no
//! message ever travels in a link.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions held at most.
pub const MAX_SESSIONS: usize = 1_000;

/// How long a session lasts by default.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The server's sessions.
///
/// ```
/// use std::time::Duration;
/// let sessions = isr::server::session::Sessions::new(Duration::from_secs(60));
/// let id = sessions.open();
/// assert_eq!(id.len(), 64);
/// assert!(sessions.is_open(&id));
/// assert!(!sessions.is_open("0000"));
/// sessions.close(&id);
/// assert!(!sessions.is_open(&id), "logged out");
/// ```
pub struct Sessions {
    lifetime: Duration,
    held: Mutex<HashMap<[u8; 32], Session>>,
}

struct Session {
    expires: Instant,
    notice: Option<String>,
}

impl Sessions {
    /// No sessions; each one opened lasts `lifetime`.
    pub fn new(lifetime: Duration) -> Self {
        Sessions {
            lifetime,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts (the cookie's `Max-Age`).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Opens a session and returns its id (64 hex digits).
    pub fn open(&self) -> String {
        self.open_at(Instant::now())
    }

    fn open_at(&self, now: Instant) -> String {
        let id = crate::random::hex::<32>();
        let mut held = self.lock();
        held.retain(|_, session| session.expires > now);
        if held.len() >= MAX_SESSIONS {
            if let Some(oldest) = held
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(key, _)| *key)
            {
                held.remove(&oldest);
            }
        }
        held.insert(
            fingerprint(&id),
            Session {
                expires: now + self.lifetime,
                notice: None,
            },
        );
        id
    }

    /// Whether `id` is a session that has not ended.
    pub fn is_open(&self, id: &str) -> bool {
        self.is_open_at(id, Instant::now())
    }

    fn is_open_at(&self, id: &str, now: Instant) -> bool {
        let key = fingerprint(id);
        let mut held = self.lock();
        match held.get(&key) {
            Some(session) if session.expires > now => true,
            Some(_) => {
                held.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Ends the session `id` (nothing when there is none).
    pub fn close(&self, id: &str) {
        self.lock().remove(&fingerprint(id));
    }

    /// Ends every session.
    pub fn close_all(&self) {
        self.lock().clear();
    }

    /// Sessions held now (some may have expired since).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps `notice` for the session's next dashboard page (replacing an unread one).
    pub fn set_notice(&self, id: &str, notice: String) {
        if let Some(session) = self.lock().get_mut(&fingerprint(id)) {
            session.notice = Some(notice);
        }
    }

    /// The session's pending notice, which is then gone.
    pub fn take_notice(&self, id: &str) -> Option<String> {
        self.lock()
            .get_mut(&fingerprint(id))
            .and_then(|session| session.notice.take())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the server keys a session by: a hash of its id, so that a lookup's timing says
/// nothing about the ids held.
fn fingerprint(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_at_its_expiry() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let start = Instant::now();
        let id = sessions.open_at(start);
        assert!(sessions.is_open_at(&id, start + Duration::from_secs(59)));
        assert!(!sessions.is_open_at(&id, start + Duration::from_secs(60)));
        assert!(
            sessions.is_empty(),
            "an expired session is dropped when seen"
        );
    }

    #[test]
    fn ids_are_random_and_the_count_is_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let start = Instant::now();
        let first = sessions.open_at(start);
        let ids: Vec<String> = (1..=MAX_SESSIONS)
            .map(|i| sessions.open_at(start + Duration::from_millis(i as u64)))
            .collect();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(!sessions.is_open_at(&first, start), "the oldest made room");
        assert!(ids.iter().all(|id| sessions.is_open_at(id, start)));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn a_notice_is_read_once_and_only_by_its_session() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (a, b) = (sessions.open(), sessions.open());
        sessions.set_notice(&a, "done".into());
        assert_eq!(sessions.take_notice(&b), None);
        assert_eq!(sessions.take_notice(&a).as_deref(), Some("done"));
        assert_eq!(sessions.take_notice(&a), None);
        sessions.close_all();
        assert!(!sessions.is_open(&a) && !sessions.is_open(&b));
    }
}
