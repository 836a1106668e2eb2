//! What only Gantry's own stack has: user and auth services by those
//! names, and a signing key to rotate. A team's stack has none of these,
//! so they are an extension of [`Stack`] rather than part of it.

use gantry_common::component::Component;
use gantry_common::jwt;

use super::running::Stack;
use crate::error::HarnessError;
use crate::run::process::Process;

/// Gantry's services in a [`Stack`] by name.
pub const AUTH: &str = Component::Auth.name();
/// The user service's name in a [`Stack`] (its instances are `user-1`, …).
pub const USER: &str = Component::User.name();

/// Helpers for a stack that runs Gantry's own auth and user services.
#[allow(async_fn_in_trait)] // used in tests and benches, never across threads
pub trait GantryStack {
    /// `host:port` of each user instance, for calling one directly.
    fn user_addrs(&self) -> Vec<String>;
    /// `host:port` of each auth instance.
    fn auth_addrs(&self) -> Vec<String>;
    /// The user instances' processes, in order (`user-1` first).
    fn users_mut(&mut self) -> Vec<&mut Process>;
    /// Starts one more user instance (`user-<n+1>`) and waits until it
    /// passes. Returns its instance id.
    async fn add_user(&mut self) -> Result<String, HarnessError>;
    /// Rotates auth's signing key: auth restarts signing with a new key and
    /// still publishes the old public key, so tokens signed before keep
    /// working until they expire. Returns the new seed once every gateway
    /// routes to auth again.
    async fn rotate_signing_key(&mut self) -> Result<[u8; 32], HarnessError>;
}

impl GantryStack for Stack {
    fn user_addrs(&self) -> Vec<String> {
        self.addrs(USER)
    }

    fn auth_addrs(&self) -> Vec<String> {
        self.addrs(AUTH)
    }

    fn users_mut(&mut self) -> Vec<&mut Process> {
        self.processes_mut(USER)
    }

    async fn add_user(&mut self) -> Result<String, HarnessError> {
        self.add_instance(USER).await
    }

    async fn rotate_signing_key(&mut self) -> Result<[u8; 32], HarnessError> {
        let old_x = jwt::encode_seed(&jwt::public_key(&self.signing_seed));
        let new_seed = jwt::generate_seed();
        self.set_gantry_env("GANTRY_JWT_SIGNING_KEY", &jwt::encode_seed(&new_seed));
        self.set_gantry_env("GANTRY_JWT_VERIFY_KEYS", &format!("{}={old_x}", jwt::kid_for(&old_x)));
        self.signing_seed = new_seed;
        self.redeploy(AUTH).await?;
        self.wait_gateways_ready().await?;
        Ok(new_seed)
    }
}
