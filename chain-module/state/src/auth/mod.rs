//! x/auth: accounts (number, sequence, public key) and the auth params the ante handler
//! uses.

mod genesis;
mod keeper;
mod query;

pub use genesis::{AuthGenesis, GenesisAccount};
pub use keeper::{pack_account, pack_pubkey, unpack_pubkey, AuthKeeper, AuthParams};
pub use query::route as route_query;
