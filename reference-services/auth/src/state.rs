//! What every auth handler shares.

use gantry_common::jwt::{KeySet, Signer};
use gantry_common::store::Store;

use crate::config::AuthConfig;
use crate::profiles::Profiles;

pub struct AppState {
    pub cfg: AuthConfig,
    pub signer: Signer,
    /// Auth verifies tokens presented to it (logout, refresh) with the keys
    /// it publishes.
    pub keys: KeySet,
    pub store: Store,
    pub profiles: Profiles,
    /// A real hash to verify against when the account does not exist, so an
    /// unknown username costs as much time as a wrong password.
    pub decoy_hash: String,
}
