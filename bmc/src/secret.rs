//! BMC credentials in memory: never printed, wiped when dropped.

use zeroize::Zeroizing;

/// A user name and password for one BMC. `Debug` shows the user only.
#[derive(Clone)]
pub struct Credentials {
    /// The BMC account.
    pub username: String,
    password: Zeroizing<String>,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// The password, for the one place that sends it.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}
